"""Render intended configurations: ``templates/<platform>/*.j2`` + the model → ``build/intended/<host>/``.

One file per template (config section), named after the template without ``.j2``.
Templates are looked up in the inventory's own ``templates/<platform>/`` first, then in
the repository's, so a province overrides a template without forking. Undefined
variables are errors that name the template, its line and the missing field.
Secrets are rendered from the vault only when ``secrets`` are given; otherwise the
vault reference stays in the text (for diffs and reviews that must not see them).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from provnet.drivers import linux
from provnet.errors import ProvnetError
from provnet.hostvars import device_vars
from provnet.model import Device, Model

REPO_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class RenderError(ProvnetError):
    """A template failed: names the template, the line and what was missing."""


@dataclass(frozen=True)
class Rendered:
    """The intended configuration of one device and one platform: section name → text."""

    hostname: str
    platform: str
    sections: dict[str, str]

    def text(self) -> str:
        return "".join(self.sections[name] for name in sorted(self.sections))


def _ip(value: str, part: str) -> str:
    iface = ipaddress.ip_interface(value)
    return {"address": str(iface.ip), "prefix": str(iface.network.prefixlen),
            "network": str(iface.network), "netmask": str(iface.network.netmask),
            "hostmask": str(iface.network.hostmask), "cidr": str(iface)}[part]


def _wildcard(value: str) -> str:
    return str(ipaddress.ip_network(value, strict=False).hostmask)


def _netmask(value: str) -> str:
    return str(ipaddress.ip_network(value, strict=False).netmask)


@lru_cache(maxsize=16)
def environment(search: tuple[str, ...]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(search)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(ip=_ip, wildcard=_wildcard, netmask=_netmask)
    return env


def search_path(m: Model, platform: str) -> tuple[str, ...]:
    paths = [m.root / "templates" / platform, REPO_TEMPLATES / platform]
    return tuple(str(p) for p in paths if p.is_dir())


def template_names(m: Model, platform: str) -> list[str]:
    names: set[str] = set()
    for directory in search_path(m, platform):
        names |= {p.name for p in Path(directory).glob("*.j2")}
    return sorted(names)


def context(m: Model, dev: Device, secrets: dict[str, str] | None = None) -> dict[str, Any]:
    """What a template sees: the device's hostvars plus ``secret(ref)``, and nothing else."""
    ctx = device_vars(m, dev)
    ctx["secret"] = (lambda ref: secrets.get(ref.removeprefix("vault:"), ref)) if secrets else (lambda ref: ref)
    return ctx


def render_device(m: Model, hostname: str, platform: str | None = None,
                  secrets: dict[str, str] | None = None) -> list[Rendered]:
    """Render every platform of a device (or just one)."""
    dev = m.devices[hostname]
    ctx = context(m, dev, secrets)
    out = []
    for plat in dev.platforms if platform is None else (platform,):
        search = search_path(m, plat)
        if not search:
            continue
        env = environment(search)
        sections = {}
        for name in template_names(m, plat):
            template = env.get_template(name)
            try:
                text = template.render(ctx)
            except jinja2.UndefinedError as exc:
                raise RenderError(f"{hostname}: template {plat}/{name} line {_lineno(exc, name)}: "
                                  f"{exc.message} — add it to the model (inventory) or fix the template") from None
            except jinja2.TemplateError as exc:
                raise RenderError(f"{hostname}: template {plat}/{name} line {_lineno(exc, name)}: {exc}") from None
            sections.update(split_files(name.removesuffix(".j2"), text))
        out.append(Rendered(hostname, plat, sections))
    return out


def split_files(name: str, text: str) -> dict[str, str]:
    """A template may emit several files, each introduced by a ``### file: NAME`` line (the Linux
    drivers' bundle format, read by its one parser); otherwise its output is the one file ``name``."""
    return linux.parse_bundle(text) if linux.is_bundle(text) else {name: text}


def _lineno(exc: Exception, name: str) -> str:
    tb = exc.__traceback__
    line = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            line = str(tb.tb_lineno)
        tb = tb.tb_next
    return line


def write(rendered: list[Rendered], build: Path) -> list[Path]:
    """Write sections to ``build/intended/<host>/<platform>/<section>``, mode 0600 (may hold secrets)."""
    paths = []
    for r in rendered:
        directory = build / "intended" / r.hostname / r.platform
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in r.sections.items():
            path = directory / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            paths.append(path)
    return paths
