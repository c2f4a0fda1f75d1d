"""The lab: a virtual province on one machine, built from real Linux parts.

Building blocks (independent of the province model):

- :mod:`provnet.lab.image`  -- the cached Debian 12 root filesystem every node boots;
- :mod:`provnet.lab.kernel` -- probes for the kernel features and host tools the lab uses;
- :mod:`provnet.lab.node`   -- one system container per device (netns + overlayfs +
  systemd as PID 1 under ``systemd-nspawn``);
- :mod:`provnet.lab.sysctl` -- raising (and restoring) the inotify limits hundreds of
  systemd instances need.
"""
