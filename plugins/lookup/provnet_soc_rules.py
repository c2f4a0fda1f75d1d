"""Lookup ``provnet_soc_rules``: the SOC's Sigma rules (``soc/rules``) compiled for its SQLite store.

``lookup('provnet_soc_rules', change_window='08:00-17:00', utc_offset='+07:00')`` returns the
``compiled.json`` document (provnet.soc.sigma.compile_sqlite) the SOC node's program runs: pySigma
stays on the controller, the node needs nothing but Python's standard library. A rule that does not
parse, or names a field the normaliser does not produce, fails the task with the rule's file, the
field and the known fields. The document carries no compile time, so an unchanged rule set rewrites
nothing (the converge stays idempotent).
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: provnet_soc_rules
short_description: the SOC's Sigma rules compiled to SQLite queries (provnet.soc.sigma)
options:
  change_window: {description: "The province's change window, local time HH:00-HH:00.", type: str}
  utc_offset: {description: "The province's offset from UTC, ±HH:00.", type: str}
  rules: {description: "Another rules folder than the repository's soc/rules (a province's own).", type: path}
"""


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        from provnet.soc import sigma

        rules = kwargs.pop("rules", None)
        try:
            doc = sigma.compile_sqlite(rules or sigma.RULES_DIR, parameters={k: str(v) for k, v in kwargs.items()})
        except sigma.SigmaRuleError as exc:
            raise AnsibleError(f"provnet: the SOC's Sigma rules are refused:\n{exc}") from None
        doc.pop("compiled_at", None)
        return [doc]
