"""The per-inventory lock: one holder, the second refused with the holder's details, dead holders' locks free."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provnet import lock
from provnet.drivers import linux

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from provnet import lock
with lock.hold(sys.argv[1], command="provnet rollout quan-son"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(lock.ENV, raising=False)
    return tmp_path / "home"


def _holder(inv: Path, code: str = HOLDER, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code, str(inv), *args], stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_lock_file_is_per_resolved_inventory_under_provnet_home(tmp_path: Path, home: Path) -> None:
    (tmp_path / "inv").mkdir()
    path = lock.lock_path(tmp_path / "inv")
    assert path.parent == home / "locks" and path.suffix == ".lock"
    assert lock.lock_path(tmp_path / "x" / ".." / "inv") == path
    assert lock.lock_path(tmp_path / "other") != path


def test_a_second_holder_is_refused_at_once_with_the_holders_details(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        h = lock.holder(tmp_path)
        assert h is not None and h.pid == proc.pid and h.command == "provnet rollout quan-son"
        start = time.monotonic()
        with pytest.raises(lock.Locked) as exc:
            with lock.hold(tmp_path):
                pass
        assert time.monotonic() - start < 1.0  # no waiting by default
        text = str(exc.value)
        assert text.startswith(f"inventory {tmp_path} is locked by ")
        assert f"(pid {proc.pid}, `provnet rollout quan-son`) since " in text and "(giờ VN)" in text
        with pytest.raises(lock.Locked):
            with lock.hold(tmp_path, wait=0.5):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_wait_takes_the_lock_once_the_holder_lets_go(tmp_path: Path) -> None:
    code = "import sys, time\nfrom provnet import lock\nwith lock.hold(sys.argv[1]):\n" \
           "    print('held', flush=True); time.sleep(0.8)\n"
    proc = _holder(tmp_path, code)
    with lock.hold(tmp_path, wait=10) as me:
        assert me.pid == os.getpid()
    proc.wait()


def test_a_killed_holders_lock_is_taken_over(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    proc.send_signal(signal.SIGKILL)  # no cleanup runs: the content stays, the kernel drops the flock
    proc.wait()
    assert lock.lock_path(tmp_path).read_text()  # stale details left behind
    assert lock.holder(tmp_path) is None
    with lock.hold(tmp_path, command="provnet net deploy --commit") as me:
        h = lock.holder(tmp_path)
        assert h == me and h.pid == os.getpid() and h.command == "provnet net deploy --commit"
    assert lock.holder(tmp_path) is None and lock.lock_path(tmp_path).read_text() == ""


def test_a_child_of_the_holder_is_inside_its_lock(tmp_path: Path) -> None:
    """The rollout's own ansible-playbook (or net deploy) runs under the rollout's lock, not against it."""
    child = "import sys\nfrom provnet import lock\nwith lock.hold(sys.argv[1]) as h: print(h.pid)\n"
    with lock.hold(tmp_path) as me:
        assert os.environ[lock.ENV].endswith(me.token)
        res = subprocess.run([sys.executable, "-c", child, str(tmp_path)], capture_output=True, text=True,
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert res.returncode == 0 and res.stdout.strip() == str(me.pid), res.stderr
        with lock.hold(tmp_path) as again:  # reentrant in the holder's process too
            assert again == me
        lock.hold_for_run(tmp_path, os.getpid())  # the Ansible action under the holder: nothing to take
    assert lock.ENV not in os.environ
    # a stale marker (its holder gone) grants nothing
    os.environ[lock.ENV] = f"{lock.lock_path(tmp_path)}:{me.token}"
    try:
        proc = _holder(tmp_path)
        with pytest.raises(lock.Locked):
            with lock.hold(tmp_path):
                pass
        proc.kill()
        proc.wait()
    finally:
        os.environ.pop(lock.ENV)


RUN = """
import os, sys, time
from provnet import lock
# stands in for ansible-playbook: two forked workers each ask for the run's lock
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        lock.hold_for_run(sys.argv[1], os.getppid())
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_an_ansible_run_holds_the_lock_until_it_exits(tmp_path: Path) -> None:
    proc = _holder(tmp_path, RUN, "1.5")
    try:
        h = lock.holder(tmp_path)
        assert h is not None and h.pid == proc.pid and "python" in h.command
        with pytest.raises(lock.Locked, match=f"pid {proc.pid}"):
            with lock.hold(tmp_path):
                pass
        # a worker of another run is refused too
        with pytest.raises(lock.Locked):
            lock.hold_for_run(tmp_path, os.getpid())
    finally:
        proc.wait()
    with lock.hold(tmp_path):  # the helper let go when the run ended (a dead holder's grace covers the ms)
        pass


def test_a_rollout_refuses_a_playbook_run(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        with pytest.raises(lock.Locked, match="provnet rollout quan-son"):
            lock.hold_for_run(tmp_path, os.getpid())
    finally:
        proc.kill()
        proc.wait()


def test_each_apply_gets_its_own_systemd_unit() -> None:
    names = {linux.apply_unit("frr") for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith("provnet-frr-") and all(c.isalnum() or c in "-_." for c in n) for n in names)
