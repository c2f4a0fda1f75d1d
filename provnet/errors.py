"""Errors that reach the user: each names the file, the object and the fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in the source of truth, printed as one line."""

    file: str
    obj: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.obj}: {self.message} — fix: {self.fix}"


class ProvnetError(Exception):
    """Base class of every error provnet reports to the user."""


class InventoryError(ProvnetError):
    """The inventory is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class AddressRefused(ProvnetError):
    """The address guard refused a destination outside the lab range."""
