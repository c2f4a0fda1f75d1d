"""The engine's per-device converge: validate every section first, back up, commit in order, stop on failure.

Drivers here are in-test fakes with NAPALM's interface (the real drivers run against the lab in
tests/integration/test_20_engine.py); what is under test is the engine's order and bookkeeping.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from provnet import model, secrets
from provnet.drivers import DRIVERS, get_network_driver
from provnet.drivers.base import DriverError, PlatformTraits
from provnet.drivers.linux import make_bundle
from provnet.drivers.ssh import ConnectError
from provnet.engine import device
from provnet.errors import AddressRefused

REPO = Path(__file__).resolve().parents[2]
CE = "chi-lang-ce"  # frr, then nftables


class FakeDriver(PlatformTraits):
    """Records what the engine asks of one platform of one device; declares a Linux platform's traits."""

    login = "key"
    supports_commit_confirm = True
    confirms_on_fresh_connection = True

    @classmethod
    def build_candidate(cls, sections: dict[str, str]) -> str:
        return make_bundle(sections)

    def __init__(self, world: "World", platform: str, address: str = "") -> None:
        self.world, self.platform, self.address = world, platform, address

    def open(self) -> None:
        if self.platform in self.world.unreachable:
            raise ConnectError(f"{self.platform}: connection refused")
        self.world.log.append(("open", self.platform))

    def close(self) -> None:
        self.world.log.append(("close", self.platform))

    def load_replace_candidate(self, config: str | None = None, filename: str | None = None) -> None:
        if self.platform in self.world.invalid:
            raise DriverError(f"{self.platform}: candidate rejected by the validator")
        self.world.log.append(("load", self.platform))

    def compare_config(self) -> str:
        return self.world.diffs.get(self.platform, "")

    def get_config(self, retrieve: str = "all") -> dict[str, str]:
        self.world.log.append(("backup", self.platform))
        return {"running": f"running {self.platform} secret={self.world.secret}", "candidate": "", "startup": ""}

    def discard_config(self) -> None:
        self.world.log.append(("discard", self.platform))

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        if self.platform in self.world.commit_fails:
            raise DriverError(f"{self.platform}: commit failed")
        self.world.log.append(("commit", self.platform, message, revert_in))

    def open_fresh(self) -> str:
        """The device's one fresh connection: refused when any change committed on it cut management off."""
        self.world.log.append(("fresh", self.platform))
        if self.world.cut_off & set(self.world.events("commit")):
            raise ConnectError("no route to host")
        return f"fresh-{len(self.world.events('fresh'))}"

    def confirm_commit(self, connection: str | None = None) -> None:
        if self.platform in self.world.cut_off:
            raise ConnectError("no route to host")
        if self.platform in self.world.confirm_refused:
            raise self.world.VendorError("Configuration session active but not owned by netops")
        self.world.log.append(("confirm", self.platform, self.address, connection))


class World:
    class VendorError(Exception):
        """What a vendor library raises: none of provnet's own errors."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.diffs: dict[str, str] = {}
        self.unreachable: set[str] = set()
        self.invalid: set[str] = set()
        self.commit_fails: set[str] = set()
        self.cut_off: set[str] = set()
        self.confirm_refused: set[str] = set()
        self.secret = "s3cr3t-value"

    def events(self, kind: str) -> list[str]:
        return [e[1] for e in self.log if e[0] == kind]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[World, device.Context]:
    w = World()
    m = model.load(REPO / "inventory" / "lab")
    def driver_class(platform: str) -> type[FakeDriver]:
        class Fake(FakeDriver):
            def __init__(self, address: str, *_a: Any, **_k: Any) -> None:
                super().__init__(w, platform, address)
        return Fake

    monkeypatch.setattr(device, "get_network_driver", driver_class)
    ctx = device.Context(m, {"x": w.secret}, secrets.Masker({"x": w.secret}), tmp_path / "backups",
                         tmp_path / "audit.log", ticket="CHG-1", user="tester")
    return w, ctx


def test_dry_run_diffs_every_section_and_commits_nothing(world: tuple[World, device.Context]) -> None:
    w, ctx = world
    w.diffs = {"frr": "+ router bgp", "nftables": "+ chain x"}
    r = device.converge(ctx, CE)
    assert [(p.platform, p.status) for p in r.platforms] == [("frr", "would-change"), ("nftables", "would-change")]
    assert r.status == "would-change"
    assert not w.events("commit") and not w.events("backup")
    assert sorted(w.events("close")) == ["frr", "nftables"]


def test_commit_backs_up_every_section_before_the_first_change(world: tuple[World, device.Context]) -> None:
    w, ctx = world
    w.diffs = {"frr": "+ router bgp"}  # nftables unchanged: backed up all the same
    r = device.converge(ctx, CE, commit=True)
    kinds = [e[0] for e in w.log]
    assert kinds.index("backup", kinds.index("backup") + 1) < kinds.index("commit")
    assert [(p.platform, p.status) for p in r.platforms] == [("frr", "changed"), ("nftables", "unchanged")]
    for p in r.platforms:
        text = Path(p.backup).read_text()
        assert text.startswith(f"running {p.platform}") and Path(p.backup).stat().st_mode & 0o777 == 0o600
    commit = next(e for e in w.log if e[0] == "commit")
    assert commit[2].startswith("user=tester ticket=CHG-1 diff=") and commit[3] == 60
    assert w.events("confirm") == ["frr"]
    kinds = [e[0] for e in w.log]
    assert kinds.index("fresh") > kinds.index("commit")  # a connection newer than the change
    assert '"ticket": "CHG-1"' in ctx.audit_log.read_text()


def test_a_section_that_fails_validation_means_nothing_is_committed(world: tuple[World, device.Context]) -> None:
    w, ctx = world
    w.diffs = {"frr": "+ router bgp", "nftables": "+ chain x"}
    w.invalid = {"nftables"}  # the later section: frr must not be committed alone
    r = device.converge(ctx, CE, commit=True)
    assert not w.events("commit")
    assert [(p.platform, p.status) for p in r.platforms] == [("frr", "skipped"), ("nftables", "failed")]
    assert "nftables failed" in r.platforms[0].error and r.status == "failed"


def test_a_failed_commit_stops_the_sections_after_it(world: tuple[World, device.Context]) -> None:
    w, ctx = world
    w.diffs = {"frr": "+ router bgp", "nftables": "+ chain x"}
    w.commit_fails = {"frr"}
    r = device.converge(ctx, CE, commit=True)
    assert [(p.platform, p.status) for p in r.platforms] == [("frr", "failed"), ("nftables", "skipped")]
    assert "discard" in [e[0] for e in w.log if e[1] == "nftables"]


def test_a_commit_that_cuts_management_off_rolls_back(world: tuple[World, device.Context]) -> None:
    """The device's platforms are confirmed over one fresh connection after their commits: when it
    cannot be opened, every change it was to confirm rolls back (each one's revert was armed)."""
    w, ctx = world
    w.diffs = {"frr": "+ router bgp", "nftables": "+ chain x"}
    w.cut_off = {"frr"}
    r = device.converge(ctx, CE, commit=True)
    assert [(p.platform, p.status) for p in r.platforms] == [("frr", "rolled-back"), ("nftables", "rolled-back")]
    assert r.status == "rolled-back" and all("within 60 s" in p.error for p in r.platforms)
    assert w.events("fresh") == ["frr"] and not w.events("confirm")  # one attempt for the device


def test_one_fresh_connection_confirms_every_platform_after_the_last_commit(
        world: tuple[World, device.Context]) -> None:
    w, ctx = world
    w.diffs = {"frr": "+ router bgp", "nftables": "+ chain x"}
    r = device.converge(ctx, CE, commit=True)
    assert [p.status for p in r.platforms] == ["changed", "changed"]
    kinds = [e[0] for e in w.log]
    assert kinds.count("fresh") == 1 and kinds.index("fresh") > max(i for i, k in enumerate(kinds) if k == "commit")
    assert {e[3] for e in w.log if e[0] == "confirm"} == {"fresh-1"}  # both over that one connection


def test_a_refused_confirm_fails_that_platform_only(world: tuple[World, device.Context]) -> None:
    w, ctx = world
    w.diffs = {"frr": "+ router bgp", "nftables": "+ chain x"}
    w.confirm_refused = {"frr"}
    r = device.converge(ctx, CE, commit=True)
    assert [(p.platform, p.status) for p in r.platforms] == [("frr", "failed"), ("nftables", "changed")]
    assert "VendorError" in r.platforms[0].error and "within 60 s" in r.platforms[0].error


def test_a_device_with_nothing_to_change_is_not_backed_up_again(world: tuple[World, device.Context]) -> None:
    w, ctx = world
    r = device.converge(ctx, CE, commit=True)
    assert r.status == "unchanged" and not w.events("backup") and not w.events("commit")


def test_an_unreachable_section_fails_alone_and_masks_secrets(world: tuple[World, device.Context]) -> None:
    w, ctx = world
    w.unreachable = {"frr"}
    w.diffs = {"nftables": f"+ key {w.secret}"}
    r = device.converge(ctx, CE)
    assert [(p.platform, p.status) for p in r.platforms] == [("frr", "failed"), ("nftables", "would-change")]
    assert w.secret not in repr(r.as_dict())


def test_vendor_specifics_no_message_for_ios_no_revert_without_commit_confirm(
        world: tuple[World, device.Context], monkeypatch: pytest.MonkeyPatch) -> None:
    w, ctx = world
    w.diffs = {"frr": "+ a", "nftables": "+ b"}
    monkeypatch.setattr(FakeDriver, "accepts_commit_message", property(lambda self: self.platform != "nftables"))
    monkeypatch.setattr(FakeDriver, "supports_commit_confirm", property(lambda self: self.platform != "nftables"))
    r = device.converge(ctx, CE, commit=True)
    commits = {e[1]: e[2:] for e in w.log if e[0] == "commit"}
    assert commits["nftables"] == ("", None)  # NAPALM ios refuses any message; no commit-confirm: no revert
    assert commits["frr"][1] == 60
    assert r.platforms[1].status == "changed" and "no commit-confirm" in r.platforms[1].note


def test_vendor_drivers_are_guarded_before_any_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """NAPALM's ios driver knows nothing of the address guard: the engine refuses for it."""
    def tripwire(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "create_connection", tripwire)
    monkeypatch.setattr(socket.socket, "connect", tripwire)
    monkeypatch.delenv("PROVNET_PRODUCTION", raising=False)
    m = model.load(REPO / "inventory" / "thanhhoa")
    ctx = device.Context(m, {}, secrets.Masker({}), tmp_path / "b", tmp_path / "a.log")
    platforms = {d.platform: d for d in m.devices.values() if d.platform in ("cisco_ios", *DRIVERS)}
    assert {"cisco_ios", "fortios", "cisco_tp"} <= set(platforms)
    for platform, dev in platforms.items():
        with pytest.raises(AddressRefused):
            device.driver_for(ctx, dev, platform).open()
    r = device.converge(ctx, platforms["cisco_ios"].hostname, commit=True)
    assert r.status == "failed" and "address guard" in r.platforms[0].error


def test_the_real_drivers_declare_what_the_engine_relies_on() -> None:
    from napalm import get_network_driver as napalm_driver

    from provnet.drivers.cisco_tp import CiscoTpDriver

    ios = get_network_driver("cisco_ios")("198.18.255.3", "netops", "x")
    assert isinstance(ios, napalm_driver("ios"))  # NAPALM's own driver, its attributes declared
    with pytest.raises(NotImplementedError):  # before any connection: why cisco_ios gets no message
        ios.commit_config(message="user=x")
    assert not ios.accepts_commit_message and ios.supports_commit_confirm
    assert not CiscoTpDriver("198.18.255.1", "netops", "x").supports_commit_confirm


def test_net_get_runs_getters_only(world: tuple[World, device.Context]) -> None:
    from provnet.engine import run
    from provnet.errors import ProvnetError

    w, ctx = world
    with pytest.raises(ValueError, match="not a getter"):
        run.run(ctx.model, "get", CE, getter="commit_config")
    with pytest.raises(ProvnetError, match="not a getter"):
        device.get(ctx, CE, "rollback")
    assert not w.log  # refused before any device was opened


def test_vendor_commits_are_confirmed_afresh_and_their_errors_never_escape(
        world: tuple[World, device.Context], monkeypatch: pytest.MonkeyPatch) -> None:
    w, ctx = world
    monkeypatch.setattr(FakeDriver, "login", "password")  # both sections take the vendor path
    monkeypatch.setattr(FakeDriver, "confirms_on_fresh_connection", False)
    monkeypatch.delattr(FakeDriver, "build_candidate")  # the vendors' plain text
    ctx.secrets["admin_password"] = "vendor-login"
    w.diffs = {"frr": "+ a", "nftables": "+ b"}
    r = device.converge(ctx, CE, commit=True)
    address = ctx.model.devices[CE].ansible_host
    assert [e for e in w.log if e[0] == "confirm"] == [("confirm", "frr", address, None),
                                                       ("confirm", "nftables", address, None)]
    assert w.events("open").count("frr") == 2  # the commit's connection, then a fresh one to confirm
    w.log.clear()
    w.confirm_refused = {"frr"}
    r = device.converge(ctx, CE, commit=True)
    assert [(p.platform, p.status) for p in r.platforms] == [("frr", "failed"), ("nftables", "skipped")]
    assert "VendorError" in r.platforms[0].error and "within 60 s" in r.platforms[0].error


def test_the_engine_masks_every_vault_value_not_only_the_models(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A device may hold the secret of a site another inventory configured (a rollout's overlay)."""
    from provnet import model as model_mod, secrets as sec

    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROVNET_VAULT_DIR", str(tmp_path / "vault"))
    m = model_mod.load(REPO / "inventory" / "lab")
    device.Context.build(m)                       # generates the lab's vault
    paths = sec.vault_paths(m)
    sec.write_vault(paths, {**sec.read_vault(paths), "sip_elsewhere_vc": "Other-Site-Secret-42"})
    ctx = device.Context.build(m)
    assert "sip_elsewhere_vc" not in ctx.secrets
    assert ctx.masking()["sip_elsewhere_vc"] == "Other-Site-Secret-42"
    assert "Other-Site-Secret-42" not in ctx.mask('$var(password) = "Other-Site-Secret-42";')
