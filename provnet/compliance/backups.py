"""Backup history: every device's running config in a local git repository, one commit per run.

Why git: the engineers already read ``git log`` and ``git diff``, and any two nights can be
compared (Golden Config users ask for exactly this) without provnet keeping a format of its own.

- Where: ``$PROVNET_HOME/backups/<inventory folder>-<8 hex>`` (one repository per inventory,
  named like its vault: two inventories may share host names), mode 0700, files 0600.
- Layout: ``<host>/<platform>.txt``; a run writes only its scope's hosts and never deletes.
- Secrets are masked before a byte is written: a vault value becomes its reference
  (``vault:<name>``, as the intended config renders it), a reversible or salted vendor form
  (IOS type 7, FortiOS ``ENC``) becomes ``********``.
- A run is files first, then one commit (``Provnet-Run``/``Provnet-Time`` trailers). A run
  killed halfway leaves its marker and uncommitted files; the next run commits them first as
  ``incomplete run N`` and reports it (:class:`Interrupted`), so every run id resolves and no
  half-written state is mixed into the next night's commit.
- The ``git`` binary with a fixed identity, no system or global config, no hooks; ``HOME``
  is left alone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Mapping, Sequence

from provnet import history
from provnet.errors import ProvnetError
from provnet.secrets import MASK, home

IDENTITY = ("-c", "user.name=provnet compliance", "-c", "user.email=provnet@localhost",
            "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", "-c", "core.autocrlf=false",
            "-c", "core.quotepath=false", "-c", "init.defaultBranch=main", "-c", "gc.autoDetach=false")
#: Vendor forms of a secret that are reversible (IOS type 7) or salted anew on every read (FortiOS
#: ``ENC``, IOS hashes): masked so a backup neither leaks nor shows a nightly change that is noise.
VENDOR_SECRETS = (
    re.compile(r"(\b(?:password|secret|key)\s+[0-9]\s+)(\S+)"),
    re.compile(r"(\bset\s+\S+\s+ENC\s+)(\S+)"),
    re.compile(r"(\bsnmp-server\s+community\s+)(\S+)"),
)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MARKER = "provnet-run.json"


class BackupError(ProvnetError):
    """The backup repository cannot be used, or a run or date does not resolve."""


def default_path(inventory: str | Path) -> Path:
    root = Path(inventory).resolve()
    tag = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    return home() / "backups" / f"{root.name}-{tag}"


def mask(text: str, secrets: Mapping[str, str] | Sequence[str]) -> str:
    """Secret values replaced by their ``vault:<name>`` reference (a bare list: by ``********``)."""
    pairs = secrets.items() if isinstance(secrets, Mapping) else ((None, v) for v in secrets)
    by_value = {v: (f"vault:{n.removeprefix('vault:')}" if n else MASK) for n, v in pairs if v}
    for value in sorted(by_value, key=len, reverse=True):
        text = text.replace(value, by_value[value])
    for pattern in VENDOR_SECRETS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


@dataclass(frozen=True)
class Commit:
    """One run's commit: its sha, run id, run time (UTC) and whether the run finished."""

    sha: str
    run_id: int | None
    time: datetime
    complete: bool
    subject: str

    @property
    def local(self) -> str:
        return history.local_time(self.time)


@dataclass(frozen=True)
class Interrupted:
    """A previous run that did not reach its commit, committed now as ``incomplete run N``."""

    run_id: int | None
    started_at: str
    files: list[str]
    commit: str

    def __str__(self) -> str:
        who = f"run {self.run_id}" if self.run_id is not None else "an earlier run"
        return (f"{who} (started {history.local_time(self.started_at) or 'at an unknown time'}) did not finish: "
                f"{len(self.files)} file(s) it had written committed as {self.commit[:10]}")


def _trailers(message: str) -> dict[str, str]:
    out = {}
    for line in message.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith("Provnet-"):
            out[key] = value.strip()
    return out


def _message(title: str, run_id: int | None, started_at: str, inventory: str, complete: bool) -> str:
    return (f"{title}\n\nProvnet-Run: {'' if run_id is None else run_id}\nProvnet-Time: {started_at}\n"
            f"Provnet-Inventory: {inventory}\nProvnet-Complete: {'yes' if complete else 'no'}\n")


class BackupRepo:
    """One inventory's backup history."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.git_dir = self.path / ".git"

    @classmethod
    def open(cls, inventory: str | Path, path: Path | str | None = None) -> "BackupRepo":
        """Open the inventory's repository (or the one at ``path``), creating it (mode 0700) on first use."""
        repo = cls(Path(path) if path is not None else default_path(inventory))
        try:
            repo.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(repo.path, 0o700)
        except OSError as exc:
            raise BackupError(f"{repo.path}: cannot create the backup repository ({exc})") from None
        if not repo.git_dir.is_dir():
            repo.git("init", "-q")
        return repo

    # ---------------------------------------------------------------- git

    def git(self, *args: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
        base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        base.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        base.update(env or {})
        try:
            proc = subprocess.run(["git", *IDENTITY, "-C", str(self.path), *args], env=base,
                                  capture_output=True, text=True, check=False)
        except OSError as exc:
            raise BackupError(f"cannot run git ({exc}); install Debian's git package") from None
        if check and proc.returncode != 0:
            why = proc.stderr.strip() or proc.stdout.strip()
            raise BackupError(f"{self.path}: git {' '.join(args[:2])} failed: {why}")
        return proc.stdout

    def _has_head(self) -> bool:
        return self.git("rev-parse", "-q", "--verify", "HEAD", check=False).strip() != ""

    def commits(self, host: str | None = None) -> list[Commit]:
        """Run commits, newest first (only those that touched ``host``'s files, if given)."""
        if not self._has_head():
            return []
        args = ["log", "--format=%H%x1f%cI%x1f%B%x1e"]
        if host is not None:
            args += ["--", f"{_name(host)}/"]
        out = []
        for record in self.git(*args).split("\x1e"):
            if not record.strip():
                continue
            sha, when, body = record.strip("\n").split("\x1f", 2)
            t = _trailers(body)
            run = t.get("Provnet-Run", "")
            out.append(Commit(sha, int(run) if run.isdigit() else None, history.parse_time(when),
                              t.get("Provnet-Complete", "yes") == "yes", body.splitlines()[0] if body else ""))
        return out

    # ---------------------------------------------------------------- runs

    def begin(self, run_id: int, secrets: Mapping[str, str] | Sequence[str], started_at: str | None = None,
              inventory: str = "") -> "BackupRun":
        """A run, to enter with ``with``: it takes the repository's lock, commits what an interrupted run
        left (``run.interrupted``) and marks itself. ``secrets``: vault name → value (or bare values)."""
        return BackupRun(self, run_id, started_at or history.utc_now(), inventory, secrets)

    def resolve(self, ref: int | str | date | datetime) -> Commit:
        """A run id (``42``) or a date/time (the last commit at or before it, Asia/Ho_Chi_Minh)."""
        commits = self.commits()
        if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
            run_id = int(ref)
            for c in commits:
                if c.run_id == run_id:
                    return c
            known = sorted(c.run_id for c in commits if c.run_id is not None)
            raise BackupError(f"{self.path}: no backup of run {run_id}"
                              + (f" (runs here: {known[0]}–{known[-1]})" if known else " (no runs yet)"))
        limit = history.cutoff(ref)
        before = [c for c in commits if c.time <= limit]
        if not before:
            raise BackupError(f"{self.path}: no backup at or before {ref}"
                              + (f" (the first is {commits[-1].local})" if commits else " (no runs yet)"))
        return max(before, key=lambda c: c.time)  # max keeps the newest of equal times: log order

    def diff(self, host: str, from_: int | str | date | datetime | None = None,
             to: int | str | date | datetime | None = None) -> str:
        """Unified diff of ``host``'s files between two runs; ``to`` defaults to the last run,
        ``from_`` to the run before ``to``."""
        commits = self.commits()
        if not commits:
            raise BackupError(f"{self.path}: no backups yet")
        after = self.resolve(to) if to is not None else commits[0]
        if from_ is not None:
            before = self.resolve(from_).sha
        else:
            index = [c.sha for c in commits].index(after.sha)
            before = commits[index + 1].sha if index + 1 < len(commits) else self._empty_tree()
        return self.git("diff", "--no-color", "--no-ext-diff", before, after.sha, "--", f"{_name(host)}/")

    def show(self, host: str, platform: str, at: int | str | date | datetime | None = None) -> str:
        """One file as it was backed up at a run or date (default: the last run)."""
        sha = self.resolve(at).sha if at is not None else "HEAD"
        return self.git("show", f"{sha}:{_relpath(host, platform)}")

    def _empty_tree(self) -> str:
        return self.git("hash-object", "-t", "tree", os.devnull).strip()


def _name(part: str) -> str:
    if not NAME.fullmatch(part):
        raise BackupError(f"'{part}' cannot name a backup file (letters, digits, '.', '_', '-' only)")
    return part


def _relpath(host: str, platform: str) -> str:
    return f"{_name(host)}/" + "/".join(_name(p) for p in platform.split("/")) + ".txt"


@dataclass
class BackupRun:
    """One run's writes, as a context manager: ``with repo.begin(...) as run: run.write(...); run.commit()``.

    Leaving the block without :meth:`commit` (an exception, a kill) keeps the marker: the next run
    commits what was written as ``incomplete run N``."""

    repo: BackupRepo
    run_id: int
    started_at: str
    inventory: str
    secrets: Mapping[str, str] | Sequence[str] = field(default_factory=dict)
    interrupted: Interrupted | None = None
    written: list[str] = field(default_factory=list)
    _lock_fh: IO[str] | None = None
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> "BackupRun":
        gd = self.repo.git_dir
        fh = open(gd / "provnet.lock", "a", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise BackupError(f"{self.repo.path}: another compliance run is writing this backup history "
                              f"(lock {gd / 'provnet.lock'}); wait for it to finish") from None
        self._lock_fh = fh
        # We hold the run lock, so an index.lock is a git killed mid-commit by an interrupted run.
        (gd / "index.lock").unlink(missing_ok=True)
        self.interrupted = self._recover()
        tmp = gd / (MARKER + ".tmp")
        tmp.write_text(json.dumps({"run": self.run_id, "started_at": self.started_at,
                                   "inventory": self.inventory}), encoding="utf-8")
        os.replace(tmp, gd / MARKER)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def _recover(self) -> Interrupted | None:
        repo, marker_path = self.repo, self.repo.git_dir / MARKER
        for tmp in repo.git_dir.glob("provnet-tmp-*"):  # a write killed before its rename
            tmp.unlink(missing_ok=True)
        marker: dict[str, object] = {}
        if marker_path.exists():
            try:
                marker = json.loads(marker_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                marker = {}
        status = repo.git("status", "--porcelain", "-z", "--untracked-files=all")
        files = sorted({entry[3:] for entry in status.split("\0") if len(entry) > 3})
        if not marker_path.exists() and not files:
            return None
        raw = marker.get("run")
        run_id = raw if isinstance(raw, int) else None
        started = str(marker.get("started_at") or "")
        if not files and run_id is not None and any(c.run_id == run_id for c in repo.commits()):
            marker_path.unlink()  # killed after its commit, before the marker went: nothing lost
            return None
        repo.git("add", "-A")
        title = f"incomplete run {run_id if run_id is not None else '?'} — interrupted, {len(files)} file(s) written"
        repo.git("commit", "-q", "--allow-empty", "-m",
                 _message(title, run_id, started, str(marker.get("inventory") or self.inventory), False),
                 env=_dates(started or history.utc_now()))
        marker_path.unlink(missing_ok=True)
        return Interrupted(run_id, started, files, repo.git("rev-parse", "HEAD").strip())

    def write(self, host: str, platform: str, text: str) -> Path:
        """Mask ``text`` and write it as ``<host>/<platform>.txt`` (atomically, mode 0600)."""
        rel = _relpath(host, platform)
        path = self.repo.path / rel
        data = mask(text, self.secrets)
        if data and not data.endswith("\n"):
            data += "\n"
        with self._mutex:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.repo.git_dir, prefix="provnet-tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._mutex:
            self.written.append(rel)
        return path

    def commit(self) -> str:
        """The run's one commit (also when nothing changed, so every run id resolves); its sha."""
        repo = self.repo
        repo.git("add", "-A")
        title = f"compliance run {self.run_id} — {history.local_time(self.started_at)}, {len(self.written)} file(s)"
        repo.git("commit", "-q", "--allow-empty", "-m",
                 _message(title, self.run_id, self.started_at, self.inventory, True), env=_dates(self.started_at))
        (repo.git_dir / MARKER).unlink(missing_ok=True)
        return repo.git("rev-parse", "HEAD").strip()


def _dates(started_at: str) -> dict[str, str]:
    stamp = f"@{int(history.parse_time(started_at).timestamp())} +0700"
    return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}


__all__ = ["BackupRepo", "BackupRun", "BackupError", "Commit", "Interrupted", "default_path", "mask"]
