"""nftables over SSH: checked with ``nft -c``, applied atomically with ``nft -f``, persisted.

Compared in canonical form: the live ``nft -s list ruleset`` (no counters, so traffic
never reads as drift) against the candidate loaded into a throwaway network namespace
on the device (``unshare -n``) and listed the same way.
"""

from __future__ import annotations

import shlex

from provnet.drivers.base import CommitError, DriverError
from provnet.drivers.linux import STATE, LinuxDriver, unified

PATH = "/etc/nftables.conf"


class NftablesDriver(LinuxDriver):
    platform = "nftables"
    services = ("nftables",)

    def path_of(self, name: str) -> str:
        if name != "nftables.conf":
            raise DriverError(f"nftables: unknown section '{name}' (expected nftables.conf)")
        return PATH

    def owned(self) -> list[str]:
        return ["nftables.conf"]

    def mode_of(self, name: str) -> str:
        return "0755"  # Debian ships it executable (#!/usr/sbin/nft -f)

    def validate(self, staged: dict[str, str]) -> None:
        res = self.s.run(f"nft -c -f {shlex.quote(staged['nftables.conf'])}")
        if res.rc != 0:
            raise CommitError(f"{self.hostname}: nft rejects the candidate: {(res.err or res.out).strip()[-800:]}; "
                              "nothing was applied")

    def canonical_running(self) -> str:
        return self.s.run("nft -s list ruleset").check("nft list ruleset").out

    def canonical_candidate(self) -> str:
        assert self.candidate is not None
        path = f"{STATE}/candidate/nftables/diff.nft"
        self.s.write(path, self.candidate["nftables.conf"], mode="0600")
        res = self.s.run(f"unshare -n sh -c 'nft -f {path} && nft -s list ruleset'")
        if res.rc != 0:
            raise DriverError(f"{self.hostname}: candidate ruleset does not load: {(res.err or res.out).strip()[-600:]}")
        return res.out

    def platform_diff(self) -> str:
        return unified(self.canonical_running(), self.canonical_candidate(), "ruleset")

    def snapshot_live(self, directory: str) -> list[str]:
        return [f"{{ echo 'flush ruleset'; nft -s list ruleset; }} > {directory}/nftables.conf.live && "
                f"mv {directory}/nftables.conf.live {directory}/nftables.conf"]

    def live_sections(self, files: dict[str, str]) -> dict[str, str]:
        live = self.s.run("nft -s list ruleset").check("nft list ruleset").out
        return {"nftables.conf": "flush ruleset\n" + live}

    def apply_script(self) -> str:
        return f"nft -f {PATH}\nsystemctl enable -q nftables\n"

    def revert_apply(self) -> str:
        return f"nft -f {PATH}\n"
