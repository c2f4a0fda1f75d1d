"""The full-scale benchmarks of issues 21 and 22, without a lab: what they would run (`--dry-run`), on which
inventories, beside which plain alternative; the rollout benchmark's overlay compiles to thanhhoa-lab's
model; the plain baseline script connects only inside 198.18.0.0/15 (stub ssh: nothing leaves this host)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
BASELINE = BENCH / "plain_baseline.sh"
LAB_INV = str(REPO / "inventory" / "thanhhoa-lab")
sys.path.insert(0, str(BENCH))

import bench_rollout  # noqa: E402

from provnet import hostvars, model  # noqa: E402
from provnet.lab import province  # noqa: E402
from provnet.rollout import overlay  # noqa: E402


def dry_run(script: str, tmp_path: Path, how: str = "flag") -> list[tuple[dict[str, str], list[str]]]:
    """The commands a benchmark prints with --dry-run (or BENCH_DRY=1): (environment it adds, argv). No lab
    runs in its state dir, and its rollout overlay is a fresh path (no leftovers of an interrupted run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.update(PROVNET_STATE_DIR=str(tmp_path / "state"), PROVNET_HOME=str(tmp_path / "home"),
               BENCH_OVERLAY=str(tmp_path / "overlay"))
    args = ["--dry-run"] if how == "flag" else []
    if how == "env":
        env["BENCH_DRY"] = "1"
    results = sorted((p.name, p.stat().st_mtime_ns) for p in (BENCH / "results").iterdir())
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "needs root" not in proc.stdout + proc.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (BENCH / "results").iterdir()) == results  # wrote nothing
    assert not (tmp_path / "state").exists()  # touched no lab state
    commands = []
    for line in proc.stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        words = shlex.split(line)
        extra = {}
        while words and re.match(r"^[A-Z_]+=", words[0]):
            key, _, value = words.pop(0).partition("=")
            extra[key] = value
        commands.append((extra, words))
    return commands


def tool(argv: list[str]) -> str:
    return Path(argv[0]).name


def inventories(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-i"]


def test_compliance_benchmark_dry_run(tmp_path: Path) -> None:
    cmds = dry_run("bench_compliance.py", tmp_path)
    shown = [(tool(a), a[1:]) for _, a in cmds]
    assert shown == [
        ("provnet", ["lab", "up", "-i", LAB_INV]),
        ("ansible-playbook", ["-i", LAB_INV, "playbooks/site.yml"]),
        *[("provnet", ["compliance", "run", "-i", LAB_INV, "--json", "--html",
                       f"/tmp/provnet-bench/compliance/report-{i}.html"]) for i in range(3)],
        ("ansible-playbook", ["-i", LAB_INV, "playbooks/site.yml", "--check", "--diff"]),  # the plain alternative (a)
        ("bash", [str(BASELINE), "-i", LAB_INV, "-o", "/tmp/provnet-bench/compliance/baseline-0"]),  # and (b)
    ]
    assert all(inventories(a) == [LAB_INV] for _, a in cmds)


def test_compliance_benchmark_dry_by_environment(tmp_path: Path) -> None:
    assert [tool(a) for _, a in dry_run("bench_compliance.py", tmp_path, how="env")] == [
        "provnet", "ansible-playbook", "provnet", "provnet", "provnet", "ansible-playbook", "bash"]


def test_rollout_benchmark_dry_run(tmp_path: Path) -> None:
    cmds = dry_run("bench_rollout.py", tmp_path, how="env")
    OVERLAY = str(tmp_path / "overlay")  # noqa: N806
    assert not (tmp_path / "overlay").exists()  # printed, not built
    vault = cmds[0][0].get("PROVNET_VAULT_DIR")
    assert vault and all(env == {"PROVNET_VAULT_DIR": vault} for env, _ in cmds)  # the lab's vault, every time
    assert all(inventories(a) == [OVERLAY] for _, a in cmds)  # never inventory/thanhhoa-lab itself
    words = [a[1:] for _, a in cmds]
    assert words[:2] == [["lab", "up", "-i", OVERLAY], ["-i", OVERLAY, "playbooks/site.yml"]]
    rest = words[2:]
    held = {p.stem for p in (REPO / "inventory" / "thanhhoa" / "sites").glob("*.yml")}
    added = [w for w in rest if w[:2] == ["site", "add"]]
    retired = [w[2] for w in rest if w[:2] == ["site", "retire"]]
    slugs = [c.slug for c in bench_rollout.communes(model.load(LAB_INV), 17)]
    assert len(added) == 17 and sorted(retired) == sorted(slugs) and len(set(slugs)) == 17 and not set(slugs) & held
    assert all("--circuit" in w and "--contact-name" in w and "--contact-phone" in w for w in added)
    assert all(w[-3:] == ["--json", "--wait", "600"] for w in rest if w[:2] == ["site", "retire"])
    # provnet: add, rollout, retire — one commune at a time
    for i, slug in enumerate(slugs[:3]):
        assert rest[3 * i][:2] == ["site", "add"]
        assert rest[3 * i + 1:3 * i + 3] == [["rollout", slug, "-i", OVERLAY, "--json", "--wait", "600"],
                                             ["site", "retire", slug, "-i", OVERLAY, "--json", "--wait", "600"]]
    # the plain alternative: add, lab up, site.yml --limit the DC and the site, retire
    plain = rest[9:21]
    for i, slug in enumerate(slugs[3:6]):
        assert plain[4 * i][:2] == ["site", "add"]
        assert plain[4 * i + 1:4 * i + 4] == [
            ["lab", "up", "-i", OVERLAY],
            ["-i", OVERLAY, "playbooks/site.yml", "--limit", f"dc,site_{slug.replace('-', '_')}"],
            ["site", "retire", slug, "-i", OVERLAY, "--json", "--wait", "600"]]
    assert [tool(a) for _, a in cmds[11:23]].count("ansible-playbook") == 3
    # the wave: 11 added, the canary and one wave of 10, 11 retired
    wave = rest[21:]
    assert [w[:2] for w in wave[:11]] == [["site", "add"]] * 11
    assert wave[11] == ["rollout", "--wave", "10", *slugs[6:], "-i", OVERLAY, "--json", "--wait", "600"]
    assert wave[12:] == [["site", "retire", s, "-i", OVERLAY, "--json", "--wait", "600"] for s in slugs[6:]]


def test_rollout_overlay_is_thanhhoa_lab_flattened(tmp_path: Path) -> None:
    """The benchmark's inventory compiles to thanhhoa-lab's model (devices, addresses, every hostvar), has no
    base:, and the overlays `rollout --wave` makes of it are family of its lab."""
    dest = bench_rollout.build_overlay(tmp_path / "inventory")
    a, b = model.load(LAB_INV), model.load(dest)
    assert "base:" not in (dest / "province.yml").read_text()
    assert a.devices.keys() == b.devices.keys() and [d.hostname for d in a.nodes()] == [d.hostname for d in b.nodes()]
    assert all(hostvars.device_vars(a, dev) == hostvars.device_vars(b, b.devices[h]) for h, dev in a.devices.items())
    assert all(p.is_symlink() for p in (dest / "sites").iterdir()) and len(b.sites) == len(a.sites)
    wave = overlay.build(dest, tmp_path / "wave-1", exclude={next(iter(b.sites))})
    assert str(dest.resolve()) in province.family(model.load(wave))
    # an overlay of that overlay (its base: flattened to dest) still names the overlay it was made of
    again = overlay.build(wave, tmp_path / "wave-2")
    assert {str(dest.resolve()), str(wave.resolve())} <= province.family(model.load(again))


def test_rollout_communes_are_new_and_ready(tmp_path: Path) -> None:
    """Deterministic, not in the inventory, no official code reused; the first goes in (site add) and its
    rollout plan has nothing to refuse (`rollout --check`: touches nothing)."""
    m = model.load(LAB_INV)
    chosen = bench_rollout.communes(m, 20)
    assert chosen == bench_rollout.communes(m, 20) and len({c.slug for c in chosen}) == 20
    assert not {c.slug for c in chosen} & set(m.sites)
    codes = [c.args[c.args.index("--code") + 1] for c in chosen if "--code" in c.args]
    assert all(int(code) >= bench_rollout.HAND_CODE for code in codes)
    dest = bench_rollout.build_overlay(tmp_path / "inventory")
    env = {**os.environ, "PROVNET_VAULT_DIR": str(tmp_path / "vault"), "PROVNET_HOME": str(tmp_path / "home"),
           "PROVNET_STATE_DIR": str(tmp_path / "state")}
    provnet = str(Path(sys.executable).parent / "provnet")
    add = subprocess.run([provnet, "site", "add", "-i", str(dest), *chosen[0].args, "--json"], capture_output=True,
                         text=True, env=env, cwd=REPO, timeout=120)
    assert add.returncode == 0, add.stdout + add.stderr
    assert json.loads(add.stdout)["site"]["slug"] == chosen[0].slug
    assert (dest / "sites" / f"{chosen[0].slug}.yml").is_file() and not (REPO / "inventory" / "thanhhoa" / "sites" /
                                                                          f"{chosen[0].slug}.yml").exists()
    check = subprocess.run([provnet, "rollout", chosen[0].slug, "-i", str(dest), "--check", "--no-diff"],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"new      {chosen[0].slug}-ce" in check.stdout and "changed  dc-sip" in check.stdout


# ---------------------------------------------------------------- the plain baseline script


def test_baseline_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(BASELINE)], capture_output=True).returncode == 0
    assert os.access(BASELINE, os.X_OK)


@pytest.fixture
def stubs(tmp_path: Path) -> dict[str, str]:
    """ansible-inventory printing $STUB_JSON, ssh recording its arguments: nothing connects anywhere."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ansible-inventory").write_text('#!/bin/sh\ncat "$STUB_JSON"\n')
    (bin_dir / "ssh").write_text('#!/bin/sh\nprintf "%s\\n" "$*" >> "$STUB_SSH_LOG"\necho stub\n')
    for p in bin_dir.iterdir():
        p.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "BASELINE_SSH": str(bin_dir / "ssh"),
            "PYTHON": sys.executable, "STUB_JSON": str(tmp_path / "inventory.json"),
            "STUB_SSH_LOG": str(tmp_path / "ssh.log")}


def baseline(env: dict[str, str], tmp_path: Path, hostvars_: dict[str, dict[str, str]]) -> subprocess.CompletedProcess[str]:
    Path(env["STUB_JSON"]).write_text(json.dumps({"_meta": {"hostvars": hostvars_}}))
    return subprocess.run(["bash", str(BASELINE), "-i", LAB_INV, "-o", str(tmp_path / "out")], capture_output=True,
                          text=True, env=env, timeout=60)


def test_baseline_one_ssh_per_check_per_host(stubs: dict[str, str], tmp_path: Path) -> None:
    proc = baseline(stubs, tmp_path, {
        "dc-sip": {"ansible_host": "198.19.0.12", "ansible_user": "netops", "ansible_ssh_private_key_file": "/k"},
        "an-nong-ce": {"ansible_host": "198.18.3.1", "ansible_user": "netops"}})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("baseline: 2 hosts, 10 checks, 0 ssh failures, 0 non-zero, ")
    calls = Path(stubs["STUB_SSH_LOG"]).read_text().splitlines()
    assert len(calls) == 10
    assert [c.split()[c.split().index("-i") + 2] for c in calls] == ["netops@198.18.3.1"] * 5 + ["netops@198.19.0.12"] * 5
    assert all(" -i /k " in c for c in calls[5:]) and all("/ssh/id_ed25519 " in c for c in calls[:5])  # the lab key
    assert all(c.startswith("-n ") and "ControlPath=none" in c and "BatchMode=yes" in c for c in calls)
    for what in ("sshd -T", "ss -Hlntu", "nft list ruleset", "systemctl is-active chrony rsyslog", "rotate"):
        assert sum(what in c for c in calls) == 2, what
    assert (tmp_path / "out" / "dc-sip" / "nft.txt").read_text() == "stub\n"


@pytest.mark.parametrize("address", ["10.38.0.5", "8.8.8.8", "198.20.0.1", "198.17.255.255", "example.org",
                                     "198.18.0.1.nip.io", "::1"])
def test_baseline_refuses_before_any_connection(stubs: dict[str, str], tmp_path: Path, address: str) -> None:
    proc = baseline(stubs, tmp_path, {"a-ce": {"ansible_host": "198.18.0.5"}, "z-ce": {"ansible_host": address}})
    assert proc.returncode == 2 and "address guard: refusing" in proc.stderr and address in proc.stderr
    assert not Path(stubs["STUB_SSH_LOG"]).exists()  # not even the in-range host was contacted


@pytest.mark.parametrize(("address", "inside"), [
    ("198.18.0.1", True), ("198.19.255.255", True), ("198.18.0.0", True),
    ("198.20.0.1", False), ("198.17.0.1", False), ("10.38.0.5", False), ("198.18.0.256", False),
    ("198.022.0.1", False), ("198.18.0", False), ("198.18.0.1 ", False), ("198.18.0.1;id", False),
    ("example.org", False), ("", False), ("::ffff:198.18.0.1", False)])
def test_baseline_inline_guard(address: str, inside: bool) -> None:
    """The check right before each host's first ssh (sourced: main does not run)."""
    proc = subprocess.run(["bash", "-c", f'source {shlex.quote(str(BASELINE))}; in_lab_range "$1"', "_", address],
                          capture_output=True, text=True, timeout=30)
    assert (proc.returncode == 0) is inside, (address, proc.stderr)


def test_baseline_literal_addresses_are_lab_addresses() -> None:
    """Every address written in the script itself lies inside 198.18.0.0/15."""
    text = BASELINE.read_text()
    found = re.findall(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?![\d.])", text)
    assert found  # the range it names
    lab = ipaddress.ip_network("198.18.0.0/15")
    for literal in found:
        try:
            net = ipaddress.ip_network(literal, strict=False)
        except ValueError:  # e.g. 198.022.0.1, the octal example in a comment: never connected to
            assert literal in text.split("inet_aton", 1)[1].split("\n", 1)[0], literal
            continue
        assert net.subnet_of(lab), literal


# ---------------------------------------------------------------- a whole run against canned command output

import bench_compliance  # noqa: E402


class Canned(bench_compliance.Runner):
    """Runs nothing: each command answers what the real one prints (so the phases, the ratios and the
    Markdown are exercised as after a real run, without a lab)."""

    calls: list[list[str]] = []

    def __init__(self, dry: bool) -> None:
        super().__init__(False)

    def note(self, text: str) -> None:
        pass

    def run(self, label: str, argv: list, env: dict | None = None, timeout: float = 0) -> bench_compliance.Ran:
        argv = [str(a) for a in argv]
        Canned.calls.append(argv)
        words, name = argv[1:], Path(argv[0]).name
        recap = "dc-sip                     : ok=40   changed=0    unreachable=0    failed=0    skipped=3\n"
        if name == "ansible-playbook":
            return bench_compliance.Ran(300.0 if "--check" in words else 40.0, 0, recap, "")
        if name == "bash":
            return bench_compliance.Ran(600.0, 0, "baseline: 339 hosts, 1695 checks, 0 ssh failures, 12 non-zero, "
                                                  "600.0 s\n", "")
        if words[:2] == ["compliance", "run"]:
            doc = {"summary": {"devices": 339, "checks": 9000, "pass": 8900, "fail": 0, "waived": 100, "error": 0,
                               "unreachable": 0, "open": 0, "compliant": True}, "seconds": 95.2, "exit_code": 0}
            return bench_compliance.Ran(100.0, 0, json.dumps(doc), "")
        if words[:2] == ["rollout", "--wave"]:
            slugs = [w for w in words[3:] if not w.startswith("-") and "/" not in w and not w.isdigit()]
            doc = {"ok": True, "seconds": 250.0, "outcome": "11 site(s) rolled out in 2 wave(s)",
                   "waves": [{"number": 1, "sites": slugs[:1], "ok": True, "seconds": 70.0, "outcome": "ok"},
                             {"number": 2, "sites": slugs[1:], "ok": True, "seconds": 180.0, "outcome": "ok"}]}
            return bench_compliance.Ran(252.0, 0, json.dumps(doc), "")
        if words[0] == "rollout":
            doc = {"ok": True, "outcome": "rollout completed", "files": {"json": "/r.json"},
                   "steps": [{"name": n, "seconds": s} for n, s in
                             (("plan", 0.2), ("lab", 10.0), ("push", 40.0), ("verify", 10.0), ("test-call", 12.0))]}
            return bench_compliance.Ran(75.0, 0, json.dumps(doc), "")
        if words[:2] == ["site", "retire"]:
            return bench_compliance.Ran(30.0, 0, json.dumps({"ok": True, "dc_hosts": ["dc-sip"],
                                                             "lab": {"removed": [f"{words[2]}-ce"]}}), "")
        return bench_compliance.Ran(1.0, 0, json.dumps({"ok": True}), "")  # site add, lab up


@pytest.fixture
def canned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    Canned.calls = []
    for mod in (bench_compliance, bench_rollout):
        monkeypatch.setattr(mod, "Runner", Canned)
        monkeypatch.setattr(mod, "OUT", tmp_path / "results")
        monkeypatch.setattr(mod, "describe", lambda: {"cpu": "test", "cores": 2, "commit": "abc1234"})
    monkeypatch.setattr(bench_rollout, "OVERLAY", tmp_path / "overlay")
    monkeypatch.setattr(bench_compliance, "WORK", tmp_path / "work")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(sys, "argv", ["bench"])
    monkeypatch.setattr(province, "running_inventory", lambda: str(tmp_path / "overlay"))
    base = model.load(LAB_INV)
    monkeypatch.setattr(province, "status", lambda m=None: [type("Row", (), {"name": d.hostname})()
                                                            for d in base.nodes()])
    return tmp_path


def test_compliance_benchmark_whole_run(canned: Path) -> None:
    bench_compliance.main()
    report = json.loads((canned / "results" / "compliance-166.json").read_text())
    r = report["results"]
    assert r["provnet"]["median_s"] == 100.0 and r["provnet"]["target_met"] and r["provnet"]["runs"][0]["checks"] == 9000
    assert r["plain"]["total_median_s"] == 900.0 and r["ratio_plain_over_provnet"] == 9.0
    assert r["plain"]["baseline_script"]["runs"][0]["checks"] == 1695
    md = (canned / "results" / "compliance-166.md").read_text()
    assert "**Plain ÷ provnet: 9.0×**" in md and "abc1234" in md and "Target ≤ 180 s: **met**" in md


def test_rollout_benchmark_whole_run(canned: Path) -> None:
    bench_rollout.main()
    assert (canned / "overlay" / "province.yml").is_file()  # built, flattened
    report = json.loads((canned / "results" / "rollout-166.json").read_text())
    r = report["results"]
    assert r["provnet"]["end_to_end_s"]["median_s"] == 76.0 and r["provnet"]["target_met"]
    assert r["plain"]["end_to_end_s"]["median_s"] == 42.0 and r["plain"]["runs"][0]["hosts"] == 1
    assert r["ratio_plain_over_provnet"] == 0.6
    assert r["wave"]["wave_of_n"]["median_s"] == 180.0 and r["wave"]["wave_of_n"]["target_met"]
    assert len(r["wave"]["runs"][0]["retire"]) == 11 and r["provnet"]["retire_s"]["median_s"] == 30.0
    md = (canned / "results" / "rollout-166.md").read_text()
    assert "one commune end to end: 0.6×" in md and "wave of 10 [180.0]" in md
    assert sum(c[1:3] == ["site", "add"] for c in Canned.calls) == sum(c[1:3] == ["site", "retire"] for c in Canned.calls)
