"""Local groups and users brought to their state with groupadd/useradd/usermod (provnet_host)."""

from __future__ import annotations

import grp
import pwd
from collections.abc import Callable
from typing import Any

Run = Callable[[list[str]], tuple[int, str, str]]
SHADOW = "/etc/shadow"


class AccountError(Exception):
    """A group or user cannot be read or changed: the message names it."""


def _shadow(name: str, path: str = SHADOW) -> str | None:
    """The user's password field in /etc/shadow (None: no line)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            fields = line.rstrip("\n").split(":")
            if fields[0] == name and len(fields) > 1:
                return fields[1]
    return None


def _supplementary(name: str) -> set[str]:
    return {g.gr_name for g in grp.getgrall() if name in g.gr_mem}


def group_steps(groups: list[dict[str, Any]]) -> list[list[str]]:
    """groupadd commands for the groups that do not exist."""
    steps = []
    for g in groups:
        try:
            grp.getgrnam(g["name"])
        except KeyError:
            steps.append(["groupadd", *(["--system"] if g.get("system") else []), "--", g["name"]])
    return steps


def user_steps(users: list[dict[str, Any]], shadow: str = SHADOW) -> list[tuple[str, list[str]]]:
    """(what, command) per user to create or change; ``what`` never holds the password."""
    steps: list[tuple[str, list[str]]] = []
    for u in users:
        name = u["name"]
        groups = list(u.get("groups") or [])
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            argv = ["useradd"] + (["--system"] if u.get("system") else [])
            argv += ["--comment", u["comment"]] if u.get("comment") is not None else []
            argv += ["--shell", u["shell"]] if u.get("shell") else []
            argv += ["--gid", u["group"]] if u.get("group") else []
            argv += ["--groups", ",".join(groups)] if groups else []
            argv += ["--home-dir", u["home"]] if u.get("home") else []
            argv += ["--create-home"] if u.get("create_home", True) else ["--no-create-home"]
            argv += ["--password", u["password"]] if u.get("password") else []
            steps.append((f"user {name}: created", argv + ["--", name]))
            continue
        change: list[str] = []
        argv = ["usermod"]
        if u.get("comment") is not None and pw.pw_gecos.split(",")[0] != u["comment"]:
            argv += ["--comment", u["comment"]]
            change.append(f"comment {pw.pw_gecos!r} -> {u['comment']!r}")
        if u.get("shell") and pw.pw_shell != u["shell"]:
            argv += ["--shell", u["shell"]]
            change.append(f"shell {pw.pw_shell} -> {u['shell']}")
        if u.get("home") and pw.pw_dir != u["home"]:
            argv += ["--home", u["home"]]
            change.append(f"home {pw.pw_dir} -> {u['home']}")
        if u.get("group"):
            try:
                gid = grp.getgrnam(u["group"]).gr_gid
            except KeyError:
                raise AccountError(f"user {name}: no such group {u['group']!r}") from None
            if pw.pw_gid != gid:
                argv += ["--gid", u["group"]]
                change.append(f"primary group -> {u['group']}")
        have = _supplementary(name)
        want = set(groups)
        if (u.get("append", True) and not want <= have) or (not u.get("append", True) and want != have):
            argv += ["--groups", ",".join(groups)] + (["--append"] if u.get("append", True) else [])
            change.append(f"groups +{','.join(sorted(want - have))}" if u.get("append", True)
                          else f"groups -> {','.join(groups)}")
        if u.get("password") and _shadow(name, shadow) != u["password"]:
            argv += ["--password", u["password"]]
            change.append("password changed")
        if change:
            steps.append((f"user {name}: {', '.join(change)}", argv + ["--", name]))
    return steps


def converge(run: Run, groups: list[dict[str, Any]], users: list[dict[str, Any]], check: bool) -> list[str]:
    """Create the missing groups, then create or change the users; return what changed."""
    done: list[str] = []
    for argv in group_steps(groups):
        done.append(f"group {argv[-1]}: created")
        if not check:
            rc, out, err = run(argv)
            if rc != 0:
                raise AccountError(f"groupadd {argv[-1]} failed (exit {rc}): {(err or out).strip()[-400:]}")
    if check:  # a group created above does not exist yet: users that need it are reported as created/changed
        try:
            steps = user_steps(users)
        except AccountError:
            return done + [f"user {u['name']}: changed" for u in users]
    else:
        steps = user_steps(users)
    for what, argv in steps:
        done.append(what)
        if not check:
            rc, out, err = run(argv)
            if rc != 0:
                # the command line holds the password hash: name the user and the error only
                raise AccountError(f"{argv[0]} {argv[-1]} failed (exit {rc}): {(err or out).strip()[-400:]}")
    return done
