"""nftables over SSH: checked with ``nft -c``, applied atomically with ``nft -f``, persisted.

Compared in canonical form: the live ``nft -s list ruleset`` (no counters, so traffic
never reads as drift) against the candidate loaded into a throwaway network namespace
on the device (``unshare -n``, the candidate staged from stdin) and listed the same way — both in
one command.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from provnet.drivers.base import CommitError, DriverError
from provnet.drivers.linux import STATE, LinuxDriver, unified

if TYPE_CHECKING:
    from provnet.drivers.ssh import Result, Step

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

    def validate_command(self, staged: dict[str, str]) -> str:
        return f"nft -c -f {shlex.quote(staged['nftables.conf'])}"

    def rejected(self, res: Result) -> CommitError:
        return CommitError(f"{self.hostname}: nft rejects the candidate: {(res.err or res.out).strip()[-800:]}; "
                           "nothing was applied")

    def platform_diff(self) -> str:
        assert self.candidate is not None
        path = f"{STATE}/candidate/nftables/diff.nft"  # staged from stdin: nft's own stdin reading is not relied on
        running, candidate = self.s.run_many(
            ["nft -s list ruleset",
             (f"mkdir -p {STATE}/candidate/nftables && umask 077 && cat > {path} && "
              f"unshare -n sh -c 'nft -f {path} && nft -s list ruleset'", self.candidate["nftables.conf"])])
        running.check("nft list ruleset")
        if candidate.rc != 0:
            raise DriverError(f"{self.hostname}: candidate ruleset does not load: "
                              f"{(candidate.err or candidate.out).strip()[-600:]}")
        return unified(running.out, candidate.out, "ruleset")

    def snapshot_live(self, directory: str) -> list[str]:
        return [f"{{ echo 'flush ruleset'; nft -s list ruleset; }} > {directory}/nftables.conf.live && "
                f"mv {directory}/nftables.conf.live {directory}/nftables.conf"]

    def live_steps(self) -> list[Step]:
        return ["nft -s list ruleset"]

    def live_sections(self, files: dict[str, str], live: list[Result]) -> dict[str, str]:
        return {"nftables.conf": "flush ruleset\n" + live[0].check("nft list ruleset").out}

    def apply_script(self) -> str:
        return f"nft -f {PATH}\nsystemctl enable -q nftables\n"

    def revert_apply(self) -> str:
        return f"nft -f {PATH}\n"
