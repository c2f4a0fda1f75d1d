"""provnet_host, a role's whole state in one module call: its parts on recorded input, and the module itself
run by Ansible on this machine (connection local, files under a temporary folder; no root needed for them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provnet.plugin_modules import load, utils

ROOT = Path(__file__).resolve().parents[2]
host = load("provnet_host")
lines = utils("provnet_lines")
accounts = utils("provnet_accounts")


def test_a_line_replaces_the_last_match_or_goes_after_its_anchor() -> None:
    hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost\n"
    once = lines.edited(hosts, r"^127\.0\.1\.1\s", "127.0.1.1\tdong-dang-ce", r"^127\.0\.0\.1")
    assert once == "127.0.0.1\tlocalhost\n127.0.1.1\tdong-dang-ce\n::1\tlocalhost\n"
    assert lines.edited(once, r"^127\.0\.1\.1\s", "127.0.1.1\tdong-dang-ce", r"^127\.0\.0\.1") == once
    renamed = lines.edited(once, r"^127\.0\.1\.1\s", "127.0.1.1\tcao-loc-ce", r"^127\.0\.0\.1")
    assert renamed.splitlines()[1] == "127.0.1.1\tcao-loc-ce" and renamed.count("127.0.1.1") == 1
    assert lines.edited("a\n", None, "b", "nothing matches").endswith("a\nb\n")


def test_several_lines_of_one_file_become_one_file_entry_keeping_its_mode(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    f.write_text("127.0.0.1 localhost\n")
    f.chmod(0o640)
    (entry,) = lines.as_files([{"path": str(f), "line": "a"}, {"path": str(f), "line": "b", "insertafter": "^127"}])
    assert entry == {"dest": str(f), "content": "127.0.0.1 localhost\nb\na\n", "mode": "0640"}


def test_tags_narrow_only_when_the_run_names_an_item_tag() -> None:
    p: dict[str, Any] = {"packages": {"tags": ["packages"]}, "units": None, "groups": [], "users": [{"tags": ["admin"]}],
                         "lines": [], "files": [{"tags": ["ssh"]}], "run_tags": ["all"], "skip_tags": []}
    assert host.narrowing(p) is None
    assert host.narrowing({**p, "run_tags": ["site_base"]}) is None       # the play's tag: everything
    assert host.narrowing({**p, "run_tags": ["site_base", "ssh"]}) == {"ssh"}
    assert host.selected(["ssh"], {"ssh"}, []) and not host.selected(["admin"], {"ssh"}, [])
    assert not host.selected(None, {"ssh"}, [])                             # untagged: not named
    assert not host.selected(["admin"], None, ["admin"]) and host.selected(None, None, ["admin"])


def test_a_new_user_is_created_and_the_password_never_named() -> None:
    ((what, argv),) = accounts.user_steps([{"name": "provnet-no-such-user", "comment": "provnet admin",
                                            "shell": "/bin/bash", "groups": ["sudo"], "password": "$6$salt$hash"}])
    assert what == "user provnet-no-such-user: created" and "$6$" not in what
    assert argv[0] == "useradd" and argv[-2:] == ["--", "provnet-no-such-user"]
    assert argv[argv.index("--groups") + 1] == "sudo" and "--create-home" in argv
    assert argv[argv.index("--password") + 1] == "$6$salt$hash"


def test_an_existing_user_gets_only_what_differs(tmp_path: Path) -> None:
    import pwd
    me = pwd.getpwuid(os.getuid())
    shadow = tmp_path / "shadow"
    shadow.write_text(f"{me.pw_name}:$6$old$hash:19000:0:99999:7:::\n")
    same = {"name": me.pw_name, "shell": me.pw_shell, "home": me.pw_dir}
    assert accounts.user_steps([same], str(shadow)) == []
    ((what, argv),) = accounts.user_steps([{**same, "shell": "/bin/provnet-shell", "password": "$6$new$hash"}],
                                          str(shadow))
    assert what == f"user {me.pw_name}: shell {me.pw_shell} -> /bin/provnet-shell, password changed"
    assert argv[:3] == ["usermod", "--shell", "/bin/provnet-shell"]


def test_content_from_copies_another_file_of_the_host(tmp_path: Path) -> None:
    keys = tmp_path / "root_keys"
    keys.write_text("ssh-ed25519 AAAA lab\n")
    got = host.file_entries([{"dest": str(tmp_path / "k"), "content_from": str(keys), "tags": ["admin"]},
                             {"dest": str(tmp_path / "x"), "content": "x", "tags": ["ssh"]}],
                            lambda tags: "admin" in tags)
    assert got == [{"dest": str(tmp_path / "k"), "content": "ssh-ed25519 AAAA lab\n"}]
    with pytest.raises(host.FileError, match="does not exist"):
        host.file_entries([{"dest": str(tmp_path / "k"), "content_from": str(tmp_path / "none")}], lambda t: True)
    with pytest.raises(host.FileError, match="unknown keys"):
        host.file_entries([{"dest": str(tmp_path / "k"), "content": "", "srcc": "typo"}], lambda t: True)


def run_module(args: dict[str, Any], *flags: str) -> dict[str, Any]:
    """The module through `ansible localhost -c local`: its JSON result, with ``failed`` from the status line and
    ``printed`` (what the run showed: the --diff)."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "minimal",
           "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_INVENTORY_ENABLED": "host_list"}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-i", "localhost,",
                           "-e", f"ansible_python_interpreter={sys.executable}", "-m", "provnet_host",
                           "-a", json.dumps(args), *flags], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    at = proc.stdout.find("localhost | ")   # after the --diff output, if any
    assert at >= 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    head, _, body = proc.stdout[at:].partition("=>")
    return {**json.loads(body), "failed": "FAILED" in head, "printed": proc.stdout[:at]}


def test_the_module_in_check_mode_then_applied_then_unchanged(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    conf = tmp_path / "etc" / "app.conf"
    args = {"packages": {"names": ["coreutils"], "tags": ["packages"]},
            "lines": [{"path": str(hosts), "regexp": r"^127\.0\.1\.1\s", "line": "127.0.1.1\tdong-dang-ce",
                       "insertafter": r"^127\.0\.0\.1", "tags": ["hostname"]}],
            "files": [{"dest": str(tmp_path / "etc"), "state": "directory", "mode": "0755"},
                      {"dest": str(conf), "content": "key = Vv-secret-k3y\n", "mode": "0600",
                       "on_change": f"touch {tmp_path / 'restarted'}", "tags": ["app"]}],
            "secrets": ["Vv-secret-k3y"]}
    checked = run_module(args, "--check", "--diff")
    assert checked["changed"] and not conf.exists() and "dong-dang-ce" not in hosts.read_text()
    assert checked["changed_paths"] == [str(hosts), str(tmp_path / "etc"), str(conf)] and checked["missing"] == []
    assert "Vv-secret-k3y" not in json.dumps(checked) and "+key = ********" in checked["printed"]
    assert "+127.0.1.1\tdong-dang-ce" in checked["printed"]
    done = run_module(args)
    assert done["changed"] and conf.read_text() == "key = Vv-secret-k3y\n" and (tmp_path / "restarted").exists()
    assert hosts.read_text() == "127.0.0.1\tlocalhost\n127.0.1.1\tdong-dang-ce\n"
    assert done["ran"] == [f"touch {tmp_path / 'restarted'}"]
    again = run_module(args)
    assert not again["changed"] and again["changed_paths"] == [] and again["ran"] == []
    conf.write_text("drifted\n")
    only_hostname = run_module({**args, "run_tags": ["hostname"]})    # --tags hostname: the app file is left
    assert not only_hostname["changed"] and conf.read_text() == "drifted\n"


def test_a_failing_validation_changes_no_file_and_says_which_step(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("old a\n")
    res = run_module({"files": [{"dest": str(a), "content": "new a\n"},
                                {"dest": str(b), "content": "bad\n", "validate": "false %s"}]})
    assert res["failed"] and res["msg"].startswith("files: ") and str(b) in res["msg"]
    assert a.read_text() == "old a\n" and not b.exists()


def test_check_mode_on_a_factory_node_reports_files_of_an_account_not_created_yet(tmp_path: Path) -> None:
    fileset = utils("provnet_fileset")
    entries = [{"dest": str(tmp_path / "keys"), "content": "k\n", "owner": "provnet-no-such-user", "mode": "0600"}]
    changed, diffs = fileset.apply(entries, [], check=True)
    assert changed == [str(tmp_path / "keys")] and "created by this run" in diffs[0]["after"]
    with pytest.raises(fileset.FileError, match="no such user or group"):
        fileset.apply(entries, [], check=False)
