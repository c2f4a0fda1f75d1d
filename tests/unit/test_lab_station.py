"""The lab's management station boots in the host's network without the power to change it."""

from __future__ import annotations

from pathlib import Path

from provnet.lab import node, station


def test_a_node_has_its_own_network_and_may_configure_it() -> None:
    argv = node.nspawn_argv(node.node("dc-fw", Path("/tmp/lab")), "dc-fw")
    assert any(a.startswith("--network-namespace-path=") for a in argv)
    assert "--capability=CAP_NET_ADMIN" in argv
    assert not any(a.startswith("--bind") for a in argv)


def test_the_station_shares_the_host_network_but_cannot_change_it() -> None:
    binds = ((Path("/work/main"), False), (Path("/var/lib/provnet/test-home"), True))
    argv = node.nspawn_argv(node.node(station.NAME, Path("/tmp/lab")), station.NAME, host_network=True, binds=binds)
    assert not any(a.startswith("--network-namespace-path=") or a.startswith("--capability=") for a in argv)
    dropped = next(a for a in argv if a.startswith("--drop-capability=")).split("=", 1)[1].split(",")
    assert {"CAP_NET_ADMIN", "CAP_SYS_TIME", "CAP_SYS_MODULE", "CAP_SYS_BOOT"} <= set(dropped)
    assert "--bind-ro=/work/main" in argv and "--bind=/var/lib/provnet/test-home" in argv
    assert argv[-1] == "--boot"


def test_nothing_in_the_station_listens_or_touches_the_network(tmp_path: Path) -> None:
    station._mask(tmp_path)
    masked = {p.name for p in (tmp_path / "etc/systemd/system").iterdir() if p.is_symlink()
              and str(p.readlink()) == "/dev/null"}
    assert {"ssh.service", "ssh.socket", "chrony.service", "nftables.service", "frr.service"} <= masked
    station._mask(tmp_path)  # twice: no error, same result
    assert masked == {p.name for p in (tmp_path / "etc/systemd/system").iterdir()}


def test_the_station_sees_the_checkout_it_runs_from() -> None:
    assert (station.project_root() / "playbooks" / "compliance_runner.yml").is_file()
