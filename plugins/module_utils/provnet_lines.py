"""One line in a file the role does not own (as lineinfile: replace the last match or insert),
turned into a file entry that provnet_fileset writes with the others (provnet_host)."""

from __future__ import annotations

import os
import re
import stat
from typing import Any


def edited(text: str, regexp: str | None, line: str, insertafter: str | None) -> str:
    """``text`` with ``line`` in place: the last line matching ``regexp`` replaced, else ``line`` inserted
    after the last line matching ``insertafter`` (or at the end) unless it is already there."""
    lines = text.splitlines()
    if regexp:
        hits = [i for i, ln in enumerate(lines) if re.search(regexp, ln)]
        if hits:
            lines[hits[-1]] = line
            return "\n".join(lines) + "\n"
    if line in lines:
        return text
    at = len(lines)
    if insertafter and insertafter != "EOF":
        after = [i for i, ln in enumerate(lines) if re.search(insertafter, ln)]
        if after:
            at = after[-1] + 1
    lines.insert(at, line)
    return "\n".join(lines) + "\n"


def as_files(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A provnet_fileset entry per edited file (its mode and owner kept), several lines of one file combined."""
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        path = e["path"]
        if path not in out:
            st = os.stat(path) if os.path.exists(path) else None
            text = open(path, encoding="utf-8").read() if st else ""
            out[path] = {"dest": path, "content": text,
                         "mode": f"{stat.S_IMODE(st.st_mode):04o}" if st else "0644"}
        out[path]["content"] = edited(out[path]["content"], e.get("regexp"), e["line"], e.get("insertafter"))
    return list(out.values())
