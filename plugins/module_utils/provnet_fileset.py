"""Files and directories brought to their state in one pass: compare, validate, replace atomically,
run on_change commands, put everything back when one fails (provnet_files, provnet_host)."""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import stat
import subprocess
import tempfile
from typing import Any

MASK = "********"
KEYS = {"dest", "content", "state", "mode", "owner", "group", "validate", "manage", "on_change"}


class FileError(Exception):
    """A file could not be checked or written: the message names it."""


def _ids(entry: dict[str, Any]) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(entry["owner"]).pw_uid if entry.get("owner") else -1
        gid = grp.getgrnam(entry["group"]).gr_gid if entry.get("group") else -1
    except KeyError as exc:
        raise FileError(f"{entry['dest']}: no such user or group {exc}") from None
    return uid, gid


def _meta_differs(st: os.stat_result, mode: int | None, uid: int, gid: int) -> bool:
    return ((mode is not None and stat.S_IMODE(st.st_mode) != mode) or (uid != -1 and st.st_uid != uid)
            or (gid != -1 and st.st_gid != gid))


def _mask(text: str, secrets: list[str]) -> str:
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(s, MASK)
    return text


def _candidate(dest: str, data: bytes, mode: int, uid: int, gid: int) -> str:
    """``data`` written beside ``dest`` (same filesystem, so a rename replaces it atomically)."""
    fd, tmp = tempfile.mkstemp(prefix=".provnet-", dir=os.path.dirname(dest))
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)
    os.chown(tmp, uid, gid)
    return tmp


def _run(cmd: str) -> tuple[int, str]:
    proc = subprocess.run(shlex.split(cmd), capture_output=True, text=True)
    return proc.returncode, (proc.stderr or proc.stdout).strip()


def apply(entries: list[dict[str, Any]], secrets: list[str], check: bool,
          backups: dict[str, bytes | None] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """Bring every entry to its state; return (changed paths, diffs).

    Every new file is written beside its destination and validated before any is moved into
    place: one failing validation leaves all of them as they were.
    """
    changed: list[str] = []
    diffs: list[dict[str, Any]] = []
    staged: list[tuple[str, str]] = []   # (candidate, destination)
    try:
        for entry in entries:
            if not entry.get("manage", True):
                continue
            dest = entry["dest"]
            mode = int(str(entry["mode"]), 8) if entry.get("mode") is not None else None
            try:
                uid, gid = _ids(entry)
            except FileError:
                if not check:
                    raise
                # check mode: the owner is an account this run would create first (a factory-default node)
                changed.append(dest)
                diffs.append({"before_header": dest, "after_header": dest, "before": "",
                              "after": f"(owned by {entry.get('owner')}:{entry.get('group')}, created by this run)\n"})
                continue
            st = os.lstat(dest) if os.path.lexists(dest) else None
            if entry.get("state", "file") == "directory":
                if st is not None and not stat.S_ISDIR(st.st_mode):
                    raise FileError(f"{dest}: exists and is not a directory")
                if st is None or _meta_differs(st, mode, uid, gid):
                    changed.append(dest)
                    diffs.append({"before_header": dest, "after_header": dest,
                                  "before": "" if st is None else f"directory mode {stat.S_IMODE(st.st_mode):04o}\n",
                                  "after": f"directory mode {mode or 0o755:04o}\n"})
                    if not check:
                        os.makedirs(dest, mode=mode or 0o755, exist_ok=True)
                        os.chmod(dest, mode or 0o755)
                        os.chown(dest, uid, gid)
                continue
            content = entry.get("content")
            if content is None:
                raise FileError(f"{dest}: give content (or state: directory)")
            new = content.encode()
            old: bytes | None = None
            if st is not None:
                if not stat.S_ISREG(st.st_mode):
                    raise FileError(f"{dest}: exists and is not a regular file")
                with open(dest, "rb") as fh:
                    old = fh.read()
            if old == new and not (st is not None and _meta_differs(st, mode, uid, gid)):
                continue
            changed.append(dest)
            if backups is not None:
                backups[dest] = old
            if old != new:
                diffs.append({"before_header": dest, "after_header": dest,
                              "before": _mask((old or b"").decode(errors="replace"), secrets),
                              "after": _mask(content, secrets)})
            if check:
                continue
            os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
            tmp = _candidate(dest, new, mode if mode is not None else (stat.S_IMODE(st.st_mode) if st else 0o644),
                             uid if uid != -1 else (st.st_uid if st else -1),
                             gid if gid != -1 else (st.st_gid if st else -1))
            staged.append((tmp, dest))
            if entry.get("validate"):
                cmd = entry["validate"]
                if "%s" not in cmd:
                    raise FileError(f"{dest}: validate must hold %s (the candidate file): {cmd!r}")
                rc, out = _run(cmd.replace("%s", tmp))
                if rc != 0:
                    raise FileError(f"{dest}: the new content fails `{cmd}` (exit {rc}); no file was "
                                    f"changed: {_mask(out[-800:], secrets)}")
        for tmp, dest in staged:
            os.rename(tmp, dest)
        staged.clear()
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return changed, diffs


def _put_back(backups: dict[str, bytes | None]) -> None:
    for dest, old in backups.items():
        if old is None:
            if os.path.lexists(dest):
                os.unlink(dest)
            continue
        st = os.stat(dest)
        os.rename(_candidate(dest, old, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), dest)


def on_change(entries: list[dict[str, Any]], changed: list[str], backups: dict[str, bytes | None],
              secrets: list[str]) -> list[str]:
    """Run the changed files' on_change commands once each, in order; on a failure put every
    changed file back, run the commands again for the old files, and raise."""
    wanted = [e["on_change"] for e in entries if e.get("on_change") and e.get("manage", True) and e["dest"] in changed]
    commands = list(dict.fromkeys(c for w in wanted for c in ([w] if isinstance(w, str) else w)))
    ran: list[str] = []
    for cmd in commands:
        rc, out = _run(cmd)
        ran.append(cmd)
        if rc != 0:
            _put_back(backups)
            again = [c for c in commands[:commands.index(cmd) + 1] if _run(c)[0] != 0]
            raise FileError(f"`{cmd}` failed (exit {rc}) after the new files were put in place: "
                            f"{_mask(out[-800:], secrets)} — the previous files were put back"
                            + (f" (and `{'`, `'.join(again)}` failed again with them)" if again else
                               " and their services run on them again"))
    return ran


def check(entries: list[dict[str, Any]], keys: set[str] = KEYS) -> None:
    """Refuse an entry without an absolute ``dest`` or with an unknown key."""
    for i, entry in enumerate(entries):
        if not entry.get("dest") or not os.path.isabs(entry["dest"]):
            raise FileError(f"files[{i}]: dest must be an absolute path (got {entry.get('dest')!r})")
        unknown = set(entry) - keys
        if unknown:
            raise FileError(f"files[{i}] ({entry['dest']}): unknown keys {sorted(unknown)}")
