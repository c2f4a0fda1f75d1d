"""provnet_files, provnet_units and provnet_packages, the roles' one-call modules: their logic on a
temporary directory and on recorded `systemctl show` and `dpkg-query` output (no root, systemd or apt)."""

from __future__ import annotations

import grp
import importlib.util
import os
import pwd
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

MODULES = Path(__file__).resolve().parents[2] / "plugins" / "modules"


from provnet.plugin_modules import load, utils  # noqa: E402

files = load("provnet_files")
units = load("provnet_units")
ME, MY_GROUP = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def test_files_written_once_then_unchanged(tmp_path: Path) -> None:
    entries = [{"dest": str(tmp_path / "d"), "state": "directory", "mode": "0750"},
               {"dest": str(tmp_path / "d" / "a.conf"), "content": "a = 1\n", "mode": "0640", "owner": ME,
                "group": MY_GROUP},
               {"dest": str(tmp_path / "skip.conf"), "content": "x", "manage": False}]
    changed, diffs = files.apply(entries, [], check=False)
    assert changed == [str(tmp_path / "d"), str(tmp_path / "d" / "a.conf")]
    assert (tmp_path / "d" / "a.conf").read_text() == "a = 1\n"
    assert stat.S_IMODE((tmp_path / "d" / "a.conf").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750 and not (tmp_path / "skip.conf").exists()
    assert files.apply(entries, [], check=False) == ([], [])
    os.chmod(tmp_path / "d" / "a.conf", 0o644)  # a mode drift alone is a change, without a content diff
    changed, diffs = files.apply(entries, [], check=False)
    assert changed == [str(tmp_path / "d" / "a.conf")] and diffs == []
    assert stat.S_IMODE((tmp_path / "d" / "a.conf").stat().st_mode) == 0o640


def test_check_mode_touches_nothing_and_masks_secrets(tmp_path: Path) -> None:
    dest = tmp_path / "snmpd.conf"
    dest.write_text('createUser provnet SHA-256 "old-auth-key" AES "old-priv"\n')
    entry = {"dest": str(dest), "content": 'createUser provnet SHA-256 "new-auth-key" AES "new-priv"\n'}
    secrets = ["old-auth-key", "old-priv", "new-auth-key", "new-priv"]
    changed, diffs = files.apply([entry], secrets, check=True)
    assert changed == [str(dest)] and "old-auth-key" in dest.read_text()
    shown = diffs[0]["before"] + diffs[0]["after"]
    assert not any(s in shown for s in secrets) and shown.count(files.MASK) == 4


def test_a_failed_validation_changes_no_file(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.conf", tmp_path / "bad.conf"
    good.write_text("old\n")
    entries = [{"dest": str(good), "content": "new\n"},
               {"dest": str(bad), "content": "broken secret-x\n", "validate": f"{sys.executable} -c "
                "'import sys; t=open(sys.argv[1]).read(); print(\"syntax error in\", t); sys.exit(\"broken\" in t)' %s"}]
    with pytest.raises(files.FileError) as err:
        files.apply(entries, ["secret-x"], check=False)
    assert str(bad) in str(err.value) and "no file was changed" in str(err.value) and "secret-x" not in str(err.value)
    assert good.read_text() == "old\n" and not bad.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.conf"]  # no candidate left behind


def test_files_refuse_what_they_cannot_handle(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(files.FileError, match="is not a regular file"):
        files.apply([{"dest": str(tmp_path / "dir"), "content": "x"}], [], check=False)
    with pytest.raises(files.FileError, match="no such user or group"):
        files.apply([{"dest": str(tmp_path / "f"), "content": "x", "owner": "no-such-user-pv"}], [], check=False)
    with pytest.raises(files.FileError, match="validate must hold %s"):
        files.apply([{"dest": str(tmp_path / "f"), "content": "x", "validate": "true"}], [], check=False)


# `systemctl show --property=Id,LoadState,ActiveState,UnitFileState` blocks, as systemd 252 prints them
STATES = {
    "rsyslog": {"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"},
    "chrony": {"LoadState": "loaded", "ActiveState": "inactive", "UnitFileState": "disabled"},
    "snmpd": {"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"},
    "rpcbind.socket": {"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"},
    "cups.service": {"LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""},
    "exim4.service": {"LoadState": "masked", "ActiveState": "inactive", "UnitFileState": "masked"},
}


def test_units_plan_changes_only_what_differs() -> None:
    wanted = [{"name": "rsyslog", "enabled": True, "state": "started"},
              {"name": "chrony", "enabled": True, "state": "started"},
              {"name": "snmpd", "enabled": False, "state": "stopped"}]
    steps = units.plan(wanted, ["rpcbind.socket", "cups.service", "exim4.service"], STATES)
    assert steps == [("enable", "chrony"), ("start", "chrony"), ("disable", "snmpd"), ("stop", "snmpd"),
                     ("disable", "rpcbind.socket"), ("stop", "rpcbind.socket")]
    settled = {**STATES, "chrony": STATES["rsyslog"], "rpcbind.socket": STATES["cups.service"]}
    assert units.plan(wanted[:2], ["rpcbind.socket", "cups.service"], settled) == []


def test_units_refuse_a_unit_that_is_not_installed() -> None:
    with pytest.raises(ValueError, match="unit cups.service is not installed here"):
        units.plan([{"name": "cups.service", "enabled": True}], [], STATES)


def test_on_change_runs_once_per_command_for_changed_files_only(tmp_path: Path) -> None:
    log = tmp_path / "log"
    cmd = f"{sys.executable} -c 'import sys; open(sys.argv[1], \"a\").write(sys.argv[2] + \"\\n\")' {log}"
    (tmp_path / "same.conf").write_text("same\n")
    entries = [{"dest": str(tmp_path / "a.conf"), "content": "a\n", "on_change": f"{cmd} restart-x"},
               {"dest": str(tmp_path / "b.conf"), "content": "b\n", "on_change": f"{cmd} restart-x"},
               {"dest": str(tmp_path / "same.conf"), "content": "same\n", "on_change": f"{cmd} restart-y"}]
    backups: dict[str, bytes | None] = {}
    changed, _ = files.apply(entries, [], False, backups)
    assert files.on_change(entries, changed, backups, []) == [f"{cmd} restart-x"]
    assert log.read_text() == "restart-x\n"


def test_a_failed_on_change_puts_the_previous_files_back(tmp_path: Path) -> None:
    conf, new = tmp_path / "svc.conf", tmp_path / "new.conf"
    conf.write_text("working\n")
    # the "service" starts only on a config that says "working"
    start = f"{sys.executable} -c 'import sys; sys.exit(open(sys.argv[1]).read() != \"working\\n\")' {conf}"
    entries = [{"dest": str(conf), "content": "broken but valid\n", "on_change": start},
               {"dest": str(new), "content": "x\n"}]
    backups: dict[str, bytes | None] = {}
    changed, _ = files.apply(entries, [], False, backups)
    assert conf.read_text() == "broken but valid\n"
    with pytest.raises(files.FileError) as err:
        files.on_change(entries, changed, backups, [])
    assert "failed (exit 1) after the new files were put in place" in str(err.value)
    assert "the previous files were put back and their services run on them again" in str(err.value)
    assert conf.read_text() == "working\n" and not new.exists()


packages = load("provnet_packages")
# `dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' ...` as dpkg 1.21 prints it (unknown names: stderr only)
DPKG = "chrony ii \nsudo hi \nsnmpd rc \njanus iU \nkamailio iiR\n"


class Node:
    """Records commands; answers dpkg-query with DPKG and apt-get with ``apt_rc``."""

    def __init__(self, apt_rc: int = 0, dpkg_rc: int = 1) -> None:
        self.ran: list[list[str]] = []
        self.apt_rc, self.dpkg_rc = apt_rc, dpkg_rc

    def __call__(self, cmd: list[str]) -> tuple[int, str, str]:
        self.ran.append(cmd)
        if cmd[0] == "dpkg-query":
            return self.dpkg_rc, DPKG, "dpkg-query: no packages found matching baresip-core\n"
        if self.apt_rc:
            return self.apt_rc, "Reading package lists...\n", "E: Unable to locate package snmpd\n"
        return 0, "", ""


def test_packages_installed_only_ask_dpkg() -> None:
    node = Node(dpkg_rc=0)
    assert packages.ensure(node, ["chrony", "sudo"], update_cache=True, check=False) == []
    assert [c[0] for c in node.ran] == ["dpkg-query"] and node.ran[0][-2:] == ["chrony", "sudo"]


def test_packages_missing_go_through_apt_once() -> None:
    names = ["chrony", "sudo", "snmpd", "janus", "kamailio", "baresip-core"]
    assert packages.missing(names, DPKG) == ["snmpd", "janus", "kamailio", "baresip-core"]
    node = Node()
    assert packages.ensure(node, names, update_cache=True, check=False) == ["snmpd", "janus", "kamailio",
                                                                           "baresip-core"]
    update, install = node.ran[1:]
    assert update[0] == "apt-get" and update[-1] == "update"
    assert install[install.index("install"):] == ["install", "snmpd", "janus", "kamailio", "baresip-core"]
    node = Node()
    packages.ensure(node, names, update_cache=False, check=False)
    assert len(node.ran) == 2 and "update" not in node.ran[1]


def test_packages_check_mode_only_simulates() -> None:
    node = Node()
    assert packages.ensure(node, ["chrony", "snmpd"], update_cache=True, check=True) == ["snmpd"]
    assert len(node.ran) == 2 and node.ran[1][-3:] == ["install", "--simulate", "snmpd"]


def test_packages_apt_cannot_fetch_fails_naming_them() -> None:
    for check in (False, True):
        with pytest.raises(packages.PackageError) as err:
            packages.ensure(Node(apt_rc=100), ["chrony", "snmpd"], update_cache=False, check=check)
        assert str(err.value).startswith("not installed: snmpd; apt-get ")
        assert "E: Unable to locate package snmpd" in str(err.value) and "image.py PACKAGES" in str(err.value)
    with pytest.raises(packages.PackageError, match="apt-get update failed"):
        packages.ensure(Node(apt_rc=100), ["snmpd"], update_cache=True, check=False)
    with pytest.raises(packages.PackageError, match="dpkg-query failed"):
        packages.ensure(Node(dpkg_rc=2), ["snmpd"], update_cache=False, check=False)
    with pytest.raises(packages.PackageError, match="not Debian package names: snmpd=5.9, -y"):
        packages.ensure(Node(), ["snmpd=5.9", "-y"], update_cache=False, check=False)


# ----------------------------------------------------------------------------------------------- provnet_fileset extras
# (the DC roles' one provnet_host call: stale instances removed, a symbolic mode, a file written once,
# a check that reads the files before it, a secret file without a diff)

fileset = utils("provnet_fileset")


def test_absent_removes_a_file_a_link_and_a_tree_after_every_file_is_in_place(tmp_path: Path) -> None:
    (tmp_path / "stale" / "7").mkdir(parents=True)
    (tmp_path / "stale" / "7" / "config").write_text("x\n")
    (tmp_path / "old.py").write_text("print()\n")
    (tmp_path / "masked.timer").symlink_to("/dev/null")
    entries = [{"dest": str(tmp_path / "stale" / "7"), "state": "absent"},
               {"dest": str(tmp_path / "old.py"), "state": "absent", "on_change": "true"},
               {"dest": str(tmp_path / "masked.timer"), "state": "absent"},
               {"dest": str(tmp_path / "never-there"), "state": "absent"},
               {"dest": str(tmp_path / "new.conf"), "content": "n\n"}]
    changed, diffs = fileset.apply(entries, [], check=True)
    assert changed == [str(tmp_path / p) for p in ("stale/7", "old.py", "masked.timer", "new.conf")]
    assert [d["before"] for d in diffs[:3]] == ["directory (1 entries)\n", "file (8 bytes)\n", "link to /dev/null\n"]
    assert (tmp_path / "stale" / "7" / "config").exists() and (tmp_path / "masked.timer").is_symlink()
    backups: dict[str, bytes | None] = {}
    assert fileset.apply(entries, [], False, backups)[0] == changed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.conf", "stale"]
    assert fileset.on_change(entries, changed, backups, []) == ["true"]
    assert fileset.apply(entries, [], check=False) == ([], [])
    # a failing validation removes nothing either
    (tmp_path / "old.py").write_text("print()\n")
    with pytest.raises(fileset.FileError, match="no file was changed"):
        fileset.apply([entries[1], {"dest": str(tmp_path / "b"), "content": "b", "validate": "false %s"}], [], False)
    assert (tmp_path / "old.py").exists()
    with pytest.raises(fileset.FileError, match="state must be one of"):
        fileset.apply([{"dest": str(tmp_path / "x"), "state": "link"}], [], check=True)


def test_a_symbolic_mode_changes_only_its_bits(tmp_path: Path) -> None:
    assert fileset.mode_of("o+x", 0o750, True) == 0o751 and fileset.mode_of("o+x", None, True) == 0o755
    assert fileset.mode_of("u=rwx,g=rx,o=", 0o777, True) == 0o750 and fileset.mode_of("a-w", None, False) == 0o444
    assert fileset.mode_of("0640", 0o777, False) == 0o640 and fileset.mode_of(0o640, None, False) == 0o640
    assert fileset.mode_of(None, 0o700, True) is None
    with pytest.raises(fileset.FileError, match="neither octal nor symbolic"):
        fileset.mode_of("o+q", 0o750, True)
    d = tmp_path / "parent"
    d.mkdir()
    d.chmod(0o750)
    entry = [{"dest": str(d), "state": "directory", "mode": "o+x"}]
    assert fileset.apply(entry, [], check=False)[0] == [str(d)]
    assert stat.S_IMODE(d.stat().st_mode) == 0o751 and fileset.apply(entry, [], check=False) == ([], [])
    d.chmod(0o775)  # the rest is the host's: only o+x is wanted
    assert fileset.apply(entry, [], check=False) == ([], []) and stat.S_IMODE(d.stat().st_mode) == 0o775


def test_force_false_writes_a_file_once_and_never_again(tmp_path: Path) -> None:
    table = tmp_path / "location"
    entry = [{"dest": str(table), "content": "schema\n", "mode": "0640", "force": False}]
    assert fileset.apply(entry, [], check=True)[0] == [str(table)] and not table.exists()
    assert fileset.apply(entry, [], check=False)[0] == [str(table)] and table.read_text() == "schema\n"
    table.write_text("schema\nrow 1\n")
    table.chmod(0o600)
    assert fileset.apply(entry, [], check=False) == ([], []) and table.read_text() == "schema\nrow 1\n"
    # provnet_host reads content_from only for a missing file (a registration table is never read back)
    host = load("provnet_host")
    got = host.file_entries([{"dest": str(table), "content_from": str(tmp_path / "not-installed-yet"),
                              "force": False}], lambda tags: True)
    assert got == [{"dest": str(table), "force": False}]


def test_diff_false_shows_no_content(tmp_path: Path) -> None:
    dest = tmp_path / "secret"
    dest.write_text("old-secret-not-in-secrets\n")
    changed, diffs = fileset.apply([{"dest": str(dest), "content": "new\n", "diff": False}], ["new"], check=True)
    assert changed == [str(dest)] and "secret" not in diffs[0]["before"] + diffs[0]["after"].replace(
        "(content changed; not shown: diff: false)", "")


def test_validate_reads_percent_as_ansible_does(tmp_path: Path) -> None:
    log = tmp_path / "argv"
    cmd = (f"{sys.executable} -c 'import sys; open(sys.argv[1], \"w\").write(\" \".join(sys.argv[2:]))' {log} "
           "100%% %s")
    fileset.apply([{"dest": str(tmp_path / "f"), "content": "x", "validate": cmd}], [], check=False)
    pct, candidate = log.read_text().split()
    assert pct == "100%" and os.path.basename(candidate).startswith(".provnet-")
    with pytest.raises(fileset.FileError, match="validate must hold %s"):
        fileset.apply([{"dest": str(tmp_path / "g"), "content": "x", "validate": "printf %%s"}], [], check=False)


def test_previous_in_place_validates_with_the_earlier_files_and_puts_them_back(tmp_path: Path) -> None:
    rules, conf = tmp_path / "rules", tmp_path / "collector.conf"
    rules.write_text("old rules\n")
    # the collector's check reads the rules at their live path (rsyslogd -N1 loading a rulebase)
    check_conf = (f"{sys.executable} -c 'import sys; sys.exit(open(sys.argv[1]).read() != \"new rules\\n\" or "
                  f"\"bad\" in open(sys.argv[2]).read())' {rules} %s")
    entries = [{"dest": str(rules), "content": "new rules\n"},
               {"dest": str(tmp_path / "table"), "content": "t\n"},
               {"dest": str(conf), "content": "bad\n", "validate": check_conf, "previous_in_place": True}]
    with pytest.raises(fileset.FileError, match="no file was changed"):
        fileset.apply(entries, [], check=False)
    assert rules.read_text() == "old rules\n" and not (tmp_path / "table").exists() and not conf.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules"]
    entries[2]["content"] = "good\n"
    backups: dict[str, bytes | None] = {}
    assert fileset.apply(entries, [], False, backups)[0] == [str(rules), str(tmp_path / "table"), str(conf)]
    assert conf.read_text() == "good\n" and backups == {str(rules): b"old rules\n", str(tmp_path / "table"): None,
                                                       str(conf): None}


def test_content_that_became_data_is_refused_naming_the_cure(tmp_path: Path) -> None:
    with pytest.raises(fileset.FileError, match="convert_data=false"):
        fileset.apply([{"dest": str(tmp_path / "sites.json"), "content": {"version": 1}}], [], check=True)
