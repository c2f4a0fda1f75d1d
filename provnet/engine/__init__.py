"""The network automation engine: render → diff → commit (confirmed) → rollback, per device.

:mod:`provnet.engine.device` holds the per-device work (used as is by the Ansible
``provnet_config`` action plugin, one host per process); :mod:`provnet.engine.run`
runs it for many devices in parallel with Nornir.
"""
