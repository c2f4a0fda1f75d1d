"""A temporary overlay inventory: another inventory's province with a chosen set of its sites.

The rollout puts the DC back by re-converging it against the inventory *without* the new sites,
and the integration test rolls a site out into an overlay of ``inventory/lab``.  The overlay is a
folder with ``province.yml`` (``base:`` the original, absolute), ``sites/`` of symlinks to the
original's site files, a copy of ``ids.yml`` and ``provnet.yml`` (the Ansible inventory plugin).
Secrets stay the original's: run against it with :func:`env` (``PROVNET_VAULT_DIR``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from provnet import sot

OVERLAY_OF = ".provnet-overlay-of"   # hidden: Ansible's inventory loader skips dot files


def _province_text(root: Path) -> str:
    """``base:`` the original; an original that is itself an overlay is flattened one level (sot reads one)."""
    path = root / sot.PROVINCE_FILE
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if isinstance(raw.get("base"), str):
        raw["base"] = str((root / raw["base"]).resolve())
        return yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)
    return f"base: {root.resolve()}\n"


def site_root(root: Path) -> Path:
    """Where an inventory's sites and ids.yml are read from (sot.read's rule)."""
    root = root.resolve()
    if (root / sot.SITES_DIR).is_dir():
        return root
    raw = yaml.safe_load((root / sot.PROVINCE_FILE).read_text(encoding="utf-8")) or {}
    return (root / raw["base"]).resolve() if isinstance(raw.get("base"), str) else root


def _ledger(sroot: Path, exclude: set[str] | frozenset[str]) -> str:
    """ids.yml with the excluded sites as retired: the ledger stays valid and their ids stay reserved."""
    text = (sroot / sot.IDS_FILE).read_text(encoding="utf-8")
    if not exclude:
        return text
    raw = yaml.safe_load(text) or {}
    retired = list(raw.get("retired") or [])
    assigned = []
    for entry in raw.get("assigned") or []:
        if entry.get("slug") in exclude:
            retired.append({"id": entry["id"], "code": entry.get("code", ""), "slug": entry["slug"],
                            "name": entry.get("name", ""), "retired_on": "overlay"})
        else:
            assigned.append(entry)
    seen = {r.get("slug") for r in retired}
    for path in sorted((sroot / sot.SITES_DIR).glob("*.y*ml")):
        if path.stem in exclude and path.stem not in seen:
            site = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            retired.append({"id": site["id"], "code": str(site.get("code", "")), "slug": path.stem,
                            "name": site.get("name", ""), "retired_on": "overlay"})
    raw["retired"], raw["assigned"] = retired, assigned
    if not assigned:
        raw.pop("assigned")
    return yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)


def build(original: Path | str, dest: Path | str, exclude: set[str] | frozenset[str] = frozenset()) -> Path:
    """Write the overlay of ``original`` at ``dest`` (emptied first) with every site but ``exclude``."""
    original, dest = Path(original).resolve(), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / sot.SITES_DIR).mkdir(parents=True)
    sroot = site_root(original)
    (dest / sot.PROVINCE_FILE).write_text(_province_text(original), encoding="utf-8")
    for path in sorted((sroot / sot.SITES_DIR).iterdir()):
        if path.suffix in (".yml", ".yaml") and path.stem not in exclude:
            (dest / sot.SITES_DIR / path.name).symlink_to(path.resolve())
    if (sroot / sot.IDS_FILE).is_file():
        (dest / sot.IDS_FILE).write_text(_ledger(sroot, exclude), encoding="utf-8")
    (dest / "provnet.yml").write_text("plugin: provnet\n", encoding="utf-8")
    # base: is flattened (sot reads one level), so the overlay also names what it was made of: an overlay
    # of an overlay still joins the lab its original runs (provnet.lab.province.family)
    (dest / OVERLAY_OF).write_text(f"{original}\n", encoding="utf-8")
    return dest


def env(vault_dir: Path | str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a run against an overlay: the original inventory's vault."""
    out = dict(os.environ if base is None else base)
    out["PROVNET_VAULT_DIR"] = str(vault_dir)
    return out
