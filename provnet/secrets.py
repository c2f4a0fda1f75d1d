"""Secrets: named in the inventory, kept in an Ansible Vault outside the repository.

The inventory holds references (``vault:<name>``) or inline ``!vault`` ciphertext,
never a clear value. For a lab (non-production) inventory the vault is generated
on first need — random values, encrypted with a password file beside it, both
mode 0600 under ``$PROVNET_HOME`` (default ``~/.local/share/provnet``).
Production vaults are written by people with ``ansible-vault``; provnet never
invents a production secret.
"""

from __future__ import annotations

import hashlib
import os
import secrets as _random
from dataclasses import dataclass
from pathlib import Path

from provnet.errors import ProvnetError
from provnet.model import Model
from provnet.yamlio import dump

MASK = "********"


class SecretError(ProvnetError):
    """A secret is missing or its vault cannot be opened."""


@dataclass(frozen=True)
class VaultPaths:
    """Where one inventory's vault and its password file live."""

    directory: Path
    vault: Path
    password_file: Path


def home() -> Path:
    return Path(os.environ.get("PROVNET_HOME", Path.home() / ".local/share/provnet"))


def vault_paths(model: Model) -> VaultPaths:
    """One vault per inventory folder, named after it, outside the repository."""
    root = model.root.resolve()
    tag = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    directory = Path(os.environ.get("PROVNET_VAULT_DIR", home() / "vaults" / f"{root.name}-{tag}"))
    return VaultPaths(directory, directory / "vault.yml", directory / "vault-pass")


def _vaultlib(password: bytes):  # type: ignore[no-untyped-def]
    # Imported lazily: ansible's vault pulls in ~0.2 s of modules most commands never need.
    from ansible.parsing.vault import VaultLib, VaultSecret

    return VaultLib([("default", VaultSecret(password))])


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


_OPENED: dict[tuple[str, int, int, int], dict[str, str]] = {}


def read_vault(paths: VaultPaths) -> dict[str, str]:
    """Decrypt the vault into a mapping name → value (once per version of the vault file)."""
    if not paths.vault.exists():
        return {}
    try:
        st, pw = paths.vault.stat(), paths.password_file.stat()
        key = (str(paths.vault), st.st_mtime_ns, st.st_size, pw.st_mtime_ns)
    except OSError:
        key = None
    if key is not None and key in _OPENED:
        return dict(_OPENED[key])
    values = _decrypt(paths)
    if key is not None:
        _OPENED.clear()  # one vault version at a time
        _OPENED[key] = values
    return dict(values)


def _decrypt(paths: VaultPaths) -> dict[str, str]:
    import yaml

    if not paths.password_file.exists():
        raise SecretError(f"{paths.vault}: vault password file {paths.password_file} is missing — "
                          "restore it, or move the vault away to have a lab vault generated anew")
    lib = _vaultlib(paths.password_file.read_bytes().strip())
    try:
        clear = lib.decrypt(paths.vault.read_bytes())
    except Exception as exc:  # ansible raises AnsibleError subclasses
        raise SecretError(f"{paths.vault}: cannot decrypt with {paths.password_file}: {exc}") from None
    data = yaml.safe_load(clear) or {}
    if not isinstance(data, dict):
        raise SecretError(f"{paths.vault}: the vault must hold a mapping of secret names to values")
    return {str(k): str(v) for k, v in data.items()}


def write_vault(paths: VaultPaths, values: dict[str, str]) -> None:
    """Encrypt and write the vault, creating its password file if needed (both 0600)."""
    if not paths.password_file.exists():
        _write_private(paths.password_file, _random.token_urlsafe(32).encode() + b"\n")
    lib = _vaultlib(paths.password_file.read_bytes().strip())
    _write_private(paths.vault, lib.encrypt(dump(dict(sorted(values.items())))))


def ensure(model: Model) -> dict[str, str]:
    """Every secret the model names, generating missing ones for a lab inventory."""
    paths = vault_paths(model)
    values = read_vault(paths)
    missing = [name for name in model.secret_refs() if name not in values]
    if missing and model.production:
        raise SecretError(
            f"{paths.vault}: missing secrets {', '.join(sorted(missing))} — add them with "
            f"`ansible-vault edit --vault-password-file {paths.password_file} {paths.vault}`"
        )
    if missing:
        for name in missing:
            values[name] = _random.token_urlsafe(18)
        write_vault(paths, values)
    return {name: values[name] for name in model.secret_refs()}


def resolve(values: dict[str, str], ref: str) -> str:
    """The clear value behind a ``vault:<name>`` reference."""
    name = ref.removeprefix("vault:")
    if name not in values:
        raise SecretError(f"secret '{name}' is not in the vault")
    return values[name]


class Masker:
    """Replaces every known secret value in text with a fixed mask."""

    def __init__(self, values: dict[str, str] | list[str]) -> None:
        items = values.values() if isinstance(values, dict) else values
        self._values = sorted({v for v in items if v}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        return text
