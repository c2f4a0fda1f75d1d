"""Files and directories brought to their state in one pass: compare, validate, replace atomically,
run on_change commands, put everything back when one fails (provnet_files, provnet_host).

An entry: ``dest``; ``content`` (a file), ``state: directory`` or ``state: absent`` (a file, link or
directory tree removed); ``mode`` (octal ``"0640"``, or symbolic ``"o+x"``/``"u=rwx,g=rx"`` applied to
the present mode), ``owner``, ``group``; ``validate`` (``%s``: the candidate, ``%%``: a ``%``, as
Ansible's); ``manage: false`` (left alone); ``force: false`` (written only when missing, never
overwritten, as copy's); ``diff: false`` (its content never shown); ``previous_in_place: true`` (the
files of the entries before it are put in place before it is validated, for a check that reads them;
a later failure puts them back); ``on_change`` (commands run once the files are in place).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from typing import Any

MASK = "********"
KEYS = {"dest", "content", "state", "mode", "owner", "group", "validate", "manage", "on_change", "force", "diff",
        "previous_in_place"}
STATES = ("file", "directory", "absent")
SYMBOLIC = re.compile(r"^([ugoa]*)([-+=])([rwx]*)$")
WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}
PERM = {"r": 0o444, "w": 0o222, "x": 0o111}


class FileError(Exception):
    """A file could not be checked or written: the message names it."""


def _ids(entry: dict[str, Any]) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(entry["owner"]).pw_uid if entry.get("owner") else -1
        gid = grp.getgrnam(entry["group"]).gr_gid if entry.get("group") else -1
    except KeyError as exc:
        raise FileError(f"{entry['dest']}: no such user or group {exc}") from None
    return uid, gid


def mode_of(value: Any, current: int | None, directory: bool) -> int | None:
    """The wanted permission bits: ``"0640"`` (or an int, YAML's 0640), or symbolic clauses (``"o+x"``,
    ``"u=rwx,g=rx,o="``) applied to ``current`` (a new path starts from 0755/0644); None: not managed."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"0?[0-7]{3,4}", text):
        return int(text, 8)
    mode = current if current is not None else (0o755 if directory else 0o644)
    for clause in text.split(","):
        m = SYMBOLIC.match(clause)
        if not m:
            raise FileError(f"mode {text!r}: neither octal nor symbolic (u/g/o/a, +/-/=, r/w/x)")
        who, op, perms = m.groups()
        scope = 0
        for w in who or "a":
            scope |= 0o7777 if w == "a" else WHO[w]
        bits = 0
        for p in perms:
            bits |= PERM[p]
        bits &= scope & 0o777
        if op == "+":
            mode |= bits
        elif op == "-":
            mode &= ~bits
        else:
            mode = (mode & ~(scope & 0o777)) | bits
    return mode


def _validation(cmd: str, candidate: str) -> str:
    """``validate`` for one candidate, as Ansible's ``validate % path``: ``%s`` the path, ``%%`` a ``%``."""
    if not re.search(r"(?<!%)(?:%%)*%s", cmd):
        raise FileError(f"validate must hold %s (the candidate file): {cmd!r}")
    return re.sub(r"%([%s])", lambda m: "%" if m.group(1) == "%" else candidate, cmd)


def _describe(st: os.stat_result, dest: str) -> str:
    if stat.S_ISLNK(st.st_mode):
        return f"link to {os.readlink(dest)}\n"
    if stat.S_ISDIR(st.st_mode):
        return f"directory ({len(os.listdir(dest))} entries)\n"
    return f"{'file' if stat.S_ISREG(st.st_mode) else 'special file'} ({st.st_size} bytes)\n"


def _remove(dest: str) -> None:
    if os.path.isdir(dest) and not os.path.islink(dest):
        shutil.rmtree(dest)
    elif os.path.lexists(dest):
        os.unlink(dest)


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
    place: one failing validation leaves all of them as they were (an entry with
    ``previous_in_place`` first puts the earlier ones in place; a failure then puts them back).
    Paths to remove (``state: absent``) go last, once every file is in place.
    """
    changed: list[str] = []
    diffs: list[dict[str, Any]] = []
    staged: list[tuple[str, str]] = []   # (candidate, destination)
    placed: list[str] = []               # moved in early (previous_in_place), put back on a failure
    removals: list[str] = []
    saved: dict[str, bytes | None] = backups if backups is not None else {}
    try:
        for entry in entries:
            if not entry.get("manage", True):
                continue
            dest = entry["dest"]
            state = entry.get("state") or "file"
            if state not in STATES:
                raise FileError(f"{dest}: state must be one of {', '.join(STATES)} (got {state!r})")
            st = os.lstat(dest) if os.path.lexists(dest) else None
            if state == "absent":
                if st is not None:
                    changed.append(dest)
                    removals.append(dest)
                    diffs.append({"before_header": dest, "after_header": dest, "before": _describe(st, dest),
                                  "after": "(absent)\n"})
                continue
            if entry.get("force", True) is False and st is not None:
                continue  # written once, never overwritten (copy's force: false)
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
            if state == "directory":
                if st is not None and not stat.S_ISDIR(st.st_mode):
                    raise FileError(f"{dest}: exists and is not a directory")
                mode = mode_of(entry.get("mode"), stat.S_IMODE(st.st_mode) if st else None, True)
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
                raise FileError(f"{dest}: give content (or state: directory or absent)")
            if not isinstance(content, str):
                raise FileError(f"{dest}: content is a {type(content).__name__}, not text (a template rendering "
                                "that looks like JSON or a list becomes data: lookup('template', …, convert_data=false))")
            new = content.encode()
            old: bytes | None = None
            if st is not None:
                if not stat.S_ISREG(st.st_mode):
                    raise FileError(f"{dest}: exists and is not a regular file")
                with open(dest, "rb") as fh:
                    old = fh.read()
            mode = mode_of(entry.get("mode"), stat.S_IMODE(st.st_mode) if st else None, False)
            if old == new and not (st is not None and _meta_differs(st, mode, uid, gid)):
                continue
            changed.append(dest)
            saved[dest] = old
            if old != new:
                diffs.append({"before_header": dest, "after_header": dest,
                              "before": _mask((old or b"").decode(errors="replace"), secrets),
                              "after": _mask(content, secrets)} if entry.get("diff", True) is not False else
                             {"before_header": dest, "after_header": dest, "before": "",
                              "after": "(content changed; not shown: diff: false)\n"})
            if check:
                continue
            if entry.get("previous_in_place") and staged:
                for tmp, earlier in staged:
                    os.rename(tmp, earlier)
                    placed.append(earlier)
                staged.clear()
            os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
            tmp = _candidate(dest, new, mode if mode is not None else (stat.S_IMODE(st.st_mode) if st else 0o644),
                             uid if uid != -1 else (st.st_uid if st else -1),
                             gid if gid != -1 else (st.st_gid if st else -1))
            staged.append((tmp, dest))
            if entry.get("validate"):
                cmd = entry["validate"]
                rc, out = _run(_validation(cmd, tmp))
                if rc != 0:
                    raise FileError(f"{dest}: the new content failed to validate with `{cmd}` (exit {rc}); no file "
                                    f"was changed: {_mask(out[-800:], secrets)}")
        for tmp, dest in staged:
            os.rename(tmp, dest)
        staged.clear()
        placed.clear()
        if not check:
            for dest in removals:
                _remove(dest)
    except BaseException:
        if placed:
            _put_back({d: saved[d] for d in placed})
        raise
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
