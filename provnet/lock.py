"""One change at a time per inventory: an exclusive ``flock`` on ``$PROVNET_HOME/locks/<hash>.lock``.

Held by ``provnet rollout``, ``provnet net deploy --commit`` / ``net rollback`` (:func:`hold`) and, for a
whole ``ansible-playbook`` run, by the ``provnet_config`` action (:func:`hold_for_run`). The second
contender fails at once (or after ``wait`` seconds) naming the holder, read from the file's content.

Why flock: the kernel drops the lock when the holder's last descriptor closes — exit, crash or
SIGKILL alike — so a dead holder's lock is free the moment it dies, with no pid check and no stale-lock
cleanup; the content it leaves is only text that the next holder overwrites. The descriptor is
close-on-exec, so programs the holder starts do not keep it; a plain ``fork`` does (on purpose: the
same run).

Ansible forks a worker per host and task, and a worker exits after its task, so no worker can hold the
lock for the run. The action therefore starts a small helper (``python -m provnet.lock``) that takes the
lock on behalf of the ``ansible-playbook`` process (the workers' parent) and keeps it until that process
exits; later workers of the same run find the lock held for their parent and go on. A holder sets
``PROVNET_LOCK`` in its environment, so what it starts (the rollout's own ``ansible-playbook``) is
inside its lock instead of refused by it.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import select
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from provnet.errors import ProvnetError

ENV = "PROVNET_LOCK"      # "<lock file>:<token>" of the lock this process's ancestor holds
GRACE_S = 2.0             # a holder that just died (its helper releases in ms) or is writing its details


@dataclass(frozen=True)
class Holder:
    """Who holds an inventory's lock (the lock file's content)."""

    user: str
    pid: int
    command: str
    since: str          # UTC, ISO 8601
    inventory: str      # resolved path
    token: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self, shown: str) -> str:
        from provnet.history import local_time

        return f"inventory {shown} is locked by {self.user} (pid {self.pid}, `{self.command}`) since {local_time(self.since)}"


class Locked(ProvnetError):
    """Another run holds the inventory's lock."""

    def __init__(self, shown: str, holder: Holder | None, path: Path) -> None:
        self.holder = holder
        super().__init__(holder.describe(shown) if holder else
                         f"inventory {shown} is locked (its holder wrote no details yet: {path})")


def lock_path(root: Path | str) -> Path:
    """The lock file of an inventory folder: one per resolved path."""
    from provnet.secrets import home

    digest = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return home() / "locks" / f"{digest}.lock"


def command_line() -> str:
    """This process's command as the user typed it (program name without its folder)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still names the holder
        return str(os.getuid())


def _utc_now() -> str:
    from provnet.history import utc_now

    return utc_now()


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _read(fd: int) -> Holder | None:
    try:
        data = json.loads(os.pread(fd, 65536, 0).decode() or "null")
        return Holder(**data) if isinstance(data, dict) else None
    except (ValueError, TypeError):
        return None  # empty (free, or a holder still writing) or not ours


def _write(fd: int, holder: Holder) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder.as_dict(), ensure_ascii=False).encode(), 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _held_by_other(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def holder(root: Path | str) -> Holder | None:
    """Who holds the lock now, or None when it is free."""
    path = lock_path(root)
    if not path.exists():
        return None
    fd = _open(path)
    try:
        return _read(fd) if _held_by_other(fd) else None
    finally:
        os.close(fd)


def _inherited(fd: int, path: Path) -> Holder | None:
    """The holder, when an ancestor of this process holds the lock and said so in ``PROVNET_LOCK``."""
    marker = os.environ.get(ENV, "")
    where, _, token = marker.rpartition(":")
    if where != str(path) or not token:
        return None
    h = _read(fd)
    return h if h is not None and h.token == token and _held_by_other(fd) else None


def _acquire(fd: int, path: Path, shown: str, wait: float, run_pid: int | None = None) -> bool:
    """Take the lock on ``fd`` (True), or find ``run_pid``'s run holding it (False). Raises :class:`Locked`."""
    start = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        h = _read(fd)
        if run_pid is not None and h is not None and h.pid == run_pid:
            return False
        elapsed = time.monotonic() - start
        settling = h is None or not _alive(h.pid)
        if elapsed >= max(wait, GRACE_S if settling else 0.0):
            raise Locked(shown, h, path)
        time.sleep(0.05 if settling else 0.2)


@contextmanager
def hold(root: Path | str, command: str | None = None, wait: float = 0.0,
         shown: str | None = None) -> Iterator[Holder]:
    """Hold the inventory's lock exclusively for the block (reentrant under an ancestor's ``PROVNET_LOCK``).

    Raises :class:`Locked` naming the holder when another run has it after ``wait`` seconds.
    """
    path = lock_path(root)
    shown = shown or str(root)
    fd = _open(path)
    try:
        inherited = _inherited(fd, path)
        if inherited is not None:
            yield inherited
            return
        _acquire(fd, path, shown, wait)
        me = Holder(_user(), os.getpid(), command or command_line(), _utc_now(), str(Path(root).resolve()),
                    uuid.uuid4().hex)
        _write(fd, me)
        before = os.environ.get(ENV)
        os.environ[ENV] = f"{path}:{me.token}"
        try:
            yield me
        finally:
            if before is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = before
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


def _proc_command(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return f"pid {pid}"
    words = [a.decode(errors="replace") for a in argv if a]
    # `python .../ansible-playbook x.yml` reads as `ansible-playbook x.yml`
    if len(words) > 1 and Path(words[0]).name.startswith("python") and "ansible" in Path(words[1]).name:
        words = words[1:]
    return shlex.join([Path(words[0]).name, *words[1:]]) if words else f"pid {pid}"


def hold_for_run(root: Path | str, run_pid: int, shown: str | None = None, timeout: float = 30.0) -> None:
    """Make sure the lock is held for as long as process ``run_pid`` lives (an ``ansible-playbook`` run).

    Returns when a helper holds it for that run (started here, or by an earlier worker of the run) or an
    ancestor's ``PROVNET_LOCK`` covers this process; raises :class:`Locked` when another run holds it.
    """
    path = lock_path(root)
    shown = shown or str(root)
    fd = _open(path)
    try:
        h = _read(fd)
        if _inherited(fd, path) is not None or (h is not None and h.pid == run_pid and _held_by_other(fd)):
            return
    finally:
        os.close(fd)
    proc = subprocess.Popen([sys.executable, "-m", "provnet.lock", str(run_pid), str(Path(root).resolve()), shown],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd="/",
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                filter(None, [str(Path(__file__).resolve().parent.parent),
                                              os.environ.get("PYTHONPATH")]))})
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode().strip() if ready else ""
    proc.stdout.close()
    if line in ("held", "run"):
        return
    if line.startswith("locked "):
        data = json.loads(line.removeprefix("locked "))
        raise Locked(shown, Holder(**data) if data else None, path)
    proc.kill()
    raise ProvnetError(f"the lock helper for {shown} did not answer ({line or 'no output'}); lock file {path}")


def _wait_for_exit(pid: int) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        while _alive(pid):
            time.sleep(0.2)
        return
    try:
        select.select([pidfd], [], [])  # readable once the process has exited
    finally:
        os.close(pidfd)


def _helper(run_pid: int, root: str, shown: str) -> int:
    """Hold the lock for ``run_pid``'s lifetime; say ``held``/``run``/``locked {...}`` on stdout first."""
    path = lock_path(root)
    fd = _open(path)
    if not _alive(run_pid):
        print("locked null", flush=True)
        return 1
    try:
        if not _acquire(fd, path, shown, 0.0, run_pid=run_pid):
            print("run", flush=True)   # another worker's helper holds it for this run
            return 0
    except Locked as exc:
        print("locked " + json.dumps(exc.holder.as_dict() if exc.holder else None, ensure_ascii=False), flush=True)
        return 1
    _write(fd, Holder(_user(), run_pid, _proc_command(run_pid), _utc_now(), root, uuid.uuid4().hex))
    print("held", flush=True)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    _wait_for_exit(run_pid)
    os.ftruncate(fd, 0)
    return 0


if __name__ == "__main__":
    sys.exit(_helper(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
