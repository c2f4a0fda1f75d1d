"""The normalised event's fields: one home for their names (ECS-style, https://www.elastic.co/guide/en/ecs/).

The SOC's rsyslog normaliser (mmnormalize, ``roles/soc_collector``) writes one JSON object per
event with these keys, flat and dotted (``{"@timestamp": …, "host.name": …}``); the SOC's store
keeps them as columns of the same names; Sigma rules (``soc/rules``) may name only these.
"""

from __future__ import annotations

#: field → what it holds. Every event has the first six; the rest when the source line carries them.
FIELDS: dict[str, str] = {
    "@timestamp": "when the event happened, UTC, RFC 3339 (2026-12-04T18:15:49Z)",
    "host.name": "the host that logged it (its provnet hostname)",
    "labels.site": "the site's slug, or 'dc' for a DC device",
    "event.dataset": "the source: sshd, sudo, nftables, kamailio, chrony, systemd, baresip, provnet.engine",
    "event.category": "ECS category: authentication, network, configuration, host, process, session",
    "event.action": "what happened, e.g. ssh-login, sudo-command, firewall-drop, sip-register, "
                    "time-sync-lost, time-sync-regained, unit-failed, call-started, call-ended, config-commit",
    "event.outcome": "success, failure or unknown",
    "event.id": "the store's id of the event (assigned at ingest)",
    "source.ip": "the client / sender address",
    "source.port": "the client / sender port (integer)",
    "destination.ip": "the server / receiver address",
    "destination.port": "the server / receiver port (integer)",
    "network.transport": "tcp, udp or icmp",
    "user.name": "the account (login user, sudo user, SIP user, engine operator)",
    "process.name": "the program that logged it (sshd, kamailio, …)",
    "service.name": "a systemd unit, for unit events",
    "provnet.ticket": "the change ticket of an engine commit",
    "provnet.digest": "the diff digest of an engine commit",
    "message": "the raw log line's message part, kept verbatim",
}

#: what every event carries
REQUIRED: tuple[str, ...] = ("@timestamp", "host.name", "labels.site", "event.dataset", "event.category",
                             "event.action", "event.outcome")
