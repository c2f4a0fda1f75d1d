"""The lab's node image: one Debian 12 root filesystem made with ``debootstrap``.

Every lab node boots this image (read-only, as the lower layer of an overlayfs).
The image is cached outside the repository under
``${PROVNET_STATE_DIR:-/var/lib/provnet}/images/bookworm-<hash>`` where the hash
covers the package list and :data:`RECIPE_VERSION`, so it is rebuilt only when
either changes.

Only the host contacts Debian's mirror, at build time.  The image itself points
nowhere: no apt sources, no NTP ``pool``/``server`` line in chrony's config.
Nodes boot "factory default": systemd, journald, dbus and sshd (root by key only);
every managed service (FRR, Kamailio, Janus, chrony, rsyslog, snmpd, ulogd2,
nftables) is installed but disabled until a role turns it on.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from provnet.lab.paths import state_root

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"

#: Bump when the post-configuration below changes, so cached images are rebuilt.
RECIPE_VERSION = "7"

#: Everything the roles, drivers and tests need inside a node.  Kamailio's
#: ``jsonrpcs`` module ships in the main ``kamailio`` package on bookworm.
PACKAGES: tuple[str, ...] = (
    "baresip-core",
    "chrony",
    "dbus",
    # janus -> libnice -> glib-networking -> gsettings -> dconf-service needs a
    # "dbus-session-bus"; debootstrap cannot resolve that virtual package itself.
    "dbus-user-session",
    "frr",
    "frr-pythontools",
    "git",  # the management station's compliance backups (provnet.compliance.backups)
    "iproute2",
    "iputils-ping",
    "janus",
    "kamailio",
    "netbase",
    "nftables",
    "openssh-server",
    "procps",
    "python3",
    "rsyslog",
    "sip-tester",
    "snmpd",
    "sudo",
    "systemd",
    "systemd-sysv",
    "tcpdump",
    "ulogd2",
)

#: Installed but off at factory default; roles enable them.
DISABLED_SERVICES: tuple[str, ...] = (
    "chrony.service",
    "cron.service",  # pulled in by logrotate (rsyslog); nothing is scheduled at factory default
    "frr.service",
    "janus.service",
    "kamailio.service",
    "nftables.service",
    "rsyslog.service",
    "snmpd.service",
    "ulogd2.service",
)

#: Units no lab node needs; masked to save memory and boot time per container.
MASKED_UNITS: tuple[str, ...] = (
    "apt-daily-upgrade.timer",
    "apt-daily.timer",
    "console-getty.service",
    "container-getty@.service",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "getty-static.service",
    "getty@.service",
    "logrotate.timer",
    "man-db.timer",
    "serial-getty@.service",
    "systemd-firstboot.service",
    "systemd-logind.service",
    "systemd-timesyncd.service",
)

SSHD_CONFIG = """\
# provnet lab: root by key only, one ed25519 host key generated per node at boot.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

KEYGEN_UNIT = """\
[Unit]
Description=provnet: generate this node's SSH host key
DefaultDependencies=no
Before=ssh.service
After=local-fs.target
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=ssh.service
"""

JOURNALD_CONF = """\
# provnet lab: keep the journal in memory and small (hundreds of nodes per host).
[Journal]
Storage=volatile
RuntimeMaxUse=8M
ForwardToSyslog=no
"""

CHRONY_CONF = """\
# provnet lab: factory default, no time source; the NTP role adds server lines
# pointing at the province's own time servers (never a public pool).
driftfile /var/lib/chrony/chrony.drift
makestep 1 3
rtcsync
"""

#: chronyd's unit only starts with CAP_SYS_TIME, which no node holds: the lab's
#: chronyd serves and follows time without touching the (host's) clock (``-x``).
CHRONY_DROPIN = """\
# provnet lab: nodes never hold CAP_SYS_TIME; chronyd runs with -x instead.
[Unit]
ConditionCapability=
"""
CHRONY_DEFAULTS = 'DAEMON_OPTS="-F 1 -x"\n'

SOURCES_LIST = "# provnet lab: nodes contact no package mirror.\n"

Progress = Callable[[str], None]


def recipe_hash() -> str:
    """Return the 12-hex-digit hash naming the image (packages + recipe version)."""
    text = "\n".join(sorted(PACKAGES)) + f"\nrecipe={RECIPE_VERSION}\nsuite={SUITE}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_path() -> Path:
    """Return the directory of the image for the current package list (built or not)."""
    return state_root() / "images" / f"{SUITE}-{recipe_hash()}"


def is_built(path: Path | None = None) -> bool:
    """Tell whether a complete image exists at ``path`` (default: :func:`image_path`)."""
    path = path or image_path()
    return (path / "provnet-image.json").is_file()


def build_image(force: bool = False, progress: Progress | None = None) -> Path:
    """Build the image with ``debootstrap`` unless a complete one is cached.

    The build goes into a temporary directory next to the target and is renamed
    into place only when complete, so an interrupted build never looks finished.
    Returns the image directory.
    """
    say = progress or (lambda _msg: None)
    target = image_path()
    if is_built(target) and not force:
        say(f"image up to date: {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".build-{target.name}-{os.getpid()}"
    _remove_tree(tmp)
    started = time.monotonic()
    try:
        say(f"debootstrap {SUITE} ({len(PACKAGES)} packages) into {tmp}")
        _debootstrap(tmp)
        say("post-configuring the image")
        configure_rootfs(tmp)
        _write_manifest(tmp, time.monotonic() - started)
        _replace(tmp, target)
    except BaseException:
        _remove_tree(tmp)
        raise
    say(f"image built in {time.monotonic() - started:.0f} s: {target}")
    return target


def _debootstrap(root: Path) -> None:
    """Run a minbase debootstrap with every lab package into ``root``."""
    cache = root.parent / "debs"
    cache.mkdir(exist_ok=True)
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--cache-dir={cache}",
        f"--include={','.join(sorted(PACKAGES))}",
        SUITE,
        str(root),
        MIRROR,
    ]
    log = root.parent / f"{root.name}.log"
    with open(log, "wb") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        inner = root / "debootstrap/debootstrap.log"
        if inner.is_file():
            with open(log, "a") as out_text:
                out_text.write("\n--- debootstrap/debootstrap.log ---\n" + inner.read_text(errors="replace"))
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"debootstrap failed ({proc.returncode}):\n" + "\n".join(tail))
    log.unlink(missing_ok=True)
    _unmount_below(root)


def configure_rootfs(root: Path) -> None:
    """Turn a fresh debootstrap tree into a factory-default lab node image."""
    _isolate_from_network(root)
    _configure_ssh(root)
    _configure_systemd(root)
    _trim(root)
    # An empty machine-id: each node gets its own (written at start, or by systemd).
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("provnet-node\n")


def _isolate_from_network(root: Path) -> None:
    """Remove apt sources and NTP sources: nodes contact nothing outside the lab."""
    (root / "etc/apt/sources.list").write_text(SOURCES_LIST)
    sources_d = root / "etc/apt/sources.list.d"
    _remove_tree(sources_d)
    sources_d.mkdir(parents=True)
    (root / "etc/chrony/chrony.conf").write_text(CHRONY_CONF)
    for extra in ("etc/chrony/sources.d", "etc/chrony/conf.d"):
        for item in (root / extra).glob("*") if (root / extra).is_dir() else ():
            item.unlink()
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("")


def _configure_ssh(root: Path) -> None:
    """sshd: root by key only; host keys removed from the image, made per node at boot."""
    (root / "etc/ssh/sshd_config.d/provnet.conf").write_text(SSHD_CONFIG)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    unit = root / "etc/systemd/system/provnet-ssh-keygen.service"
    unit.write_text(KEYGEN_UNIT)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    _systemctl(root, "enable", "provnet-ssh-keygen.service")
    _systemctl(root, "enable", "ssh.service")


def _configure_systemd(root: Path) -> None:
    """Disable managed services, mask what a container doesn't need, tame journald."""
    _systemctl(root, "disable", *DISABLED_SERVICES)
    # Disabling rsyslog drops the syslog.service alias that syslog.socket needs;
    # keep it so a plain `systemctl start rsyslog` works once a role wants it.
    alias = root / "etc/systemd/system/syslog.service"
    if not alias.is_symlink():
        alias.symlink_to("/lib/systemd/system/rsyslog.service")
    dropin = root / "etc/systemd/system/chrony.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "provnet-lab.conf").write_text(CHRONY_DROPIN)
    (root / "etc/default/chrony").write_text(CHRONY_DEFAULTS)
    _systemctl(root, "mask", *MASKED_UNITS)
    conf_d = root / "etc/systemd/journald.conf.d"
    conf_d.mkdir(parents=True, exist_ok=True)
    (conf_d / "provnet.conf").write_text(JOURNALD_CONF)
    _systemctl(root, "set-default", "multi-user.target")


def _trim(root: Path) -> None:
    """Drop downloaded packages, apt lists, docs and man pages."""
    for rel in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        directory = root / rel
        if not directory.is_dir():
            continue
        for item in directory.iterdir():
            if item.is_dir() and not item.is_symlink():
                _remove_tree(item)
            elif item.name != "lock":
                item.unlink()


def _systemctl(root: Path, verb: str, *units: str) -> None:
    """Run ``systemctl --root`` on the image (offline enable/disable/mask)."""
    subprocess.run(
        ["systemctl", f"--root={root}", "--quiet", "--no-reload", verb, *units],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def package_versions(root: Path) -> dict[str, str]:
    """Return ``{package: version}`` for every package installed in ``root``."""
    out = subprocess.run(
        ["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f=${Package}\t${Version}\n"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def tree_size(root: Path) -> int:
    """Return the disk usage in bytes of ``root`` (like ``du -s``: blocks, hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirs, files in os.walk(root):
        for name in (*files, *dirs):
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _write_manifest(root: Path, seconds: float) -> None:
    """Write ``provnet-image.json``: recipe, package list and installed versions."""
    manifest = {
        "suite": SUITE,
        "recipe_version": RECIPE_VERSION,
        "hash": recipe_hash(),
        "packages": sorted(PACKAGES),
        "versions": package_versions(root),
        "build_seconds": round(seconds, 1),
        "size_bytes": tree_size(root),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (root / "provnet-image.json").write_text(json.dumps(manifest, indent=2) + "\n")


def read_manifest(path: Path | None = None) -> dict[str, object]:
    """Return the manifest of a built image."""
    path = path or image_path()
    return json.loads((path / "provnet-image.json").read_text())


def prune_images(keep: Path | None = None) -> list[Path]:
    """Remove cached images other than ``keep`` (default: the current one).

    Only call this when no node runs on an old image (its overlay lower layer).
    """
    keep = keep or image_path()
    removed = []
    for path in sorted(keep.parent.glob(f"{SUITE}-*")):
        if path != keep and path.is_dir():
            _remove_tree(path)
            removed.append(path)
    return removed


def _replace(tmp: Path, target: Path) -> None:
    """Atomically move the finished build into place (an old copy is removed after)."""
    old = target.parent / f".old-{target.name}-{os.getpid()}"
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    _remove_tree(old)


def _unmount_below(root: Path) -> None:
    """Unmount (lazily) anything still mounted at or below ``root``, deepest first."""
    prefix = str(root.resolve())
    mounts = []
    with open("/proc/self/mounts") as handle:
        for line in handle:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, stderr=subprocess.DEVNULL)


def _remove_tree(path: Path) -> None:
    """Remove ``path`` without ever crossing into a mounted filesystem."""
    if not path.exists() and not path.is_symlink():
        return
    _unmount_below(path)
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def main() -> None:
    """``python -m provnet.lab.image [--force]``: build the image, print its path."""
    import sys

    path = build_image(force="--force" in sys.argv[1:], progress=print)
    manifest = read_manifest(path)
    print(f"{path}  {manifest['size_bytes'] / 1e6:.0f} MB  built in {manifest['build_seconds']} s")


if __name__ == "__main__":
    main()
