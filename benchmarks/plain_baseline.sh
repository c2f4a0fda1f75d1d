#!/usr/bin/env bash
# The plain alternative to `provnet compliance run` (issue 22, benchmarks/bench_compliance.py, phase plain):
# the serial per-host baseline script an engineer would write today. For every host of the inventory
# (`ansible-inventory --list`: its ansible_host, ansible_user and key), one ssh per check, one host after
# the other, no connection sharing:
#
#   sshd     sudo -n sshd -T | grep the key settings
#   ss       sudo -n ss -Hlntu                      (listeners)
#   nft      sudo -n nft list ruleset | head -n 40  (the firewall's first lines)
#   services systemctl is-active chrony rsyslog
#   rotate   grep the logrotate `rotate` lines
#
# Every address passes the address guard before any connection: the whole list through provnet's own
# (provnet/guard.py: an IP literal inside 198.18.0.0/15, nothing else) and each host again, inline, just
# before its first ssh. One refused address and nothing connects: exit 2.
#
# Usage: benchmarks/plain_baseline.sh [-i INVENTORY] [-o OUTDIR]
#   INVENTORY  default inventory/thanhhoa-lab (relative to the repository)
#   OUTDIR     default /tmp/provnet-bench/baseline: OUTDIR/<host>/<check>.txt and OUTDIR/summary.tsv
#   PYTHON     the interpreter that imports provnet (default the repository's .venv)
#   BASELINE_SSH  the ssh client (default ssh)
# The last line: `baseline: H hosts, C checks, F ssh failures, N non-zero, S s`.
# Exit: 0 every check ran, 1 some ssh failed to connect (exit 255), 2 refused or bad usage.

set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
SSH_BIN=${BASELINE_SSH:-ssh}
LAB_KEY=${PROVNET_STATE_DIR:-/var/lib/provnet}/ssh/id_ed25519
# Lab nodes get a new host key at every boot; no ControlMaster/ControlPath: one connection per check.
SSH_OPTS=(-n -o BatchMode=yes -o ConnectTimeout=10 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          -o LogLevel=ERROR -o ControlMaster=no -o ControlPath=none)
CHECKS=(sshd ss nft services rotate)

check_command() {
    case $1 in
        sshd) echo "sudo -n sshd -T | grep -Ei '^(permitrootlogin|passwordauthentication|pubkeyauthentication|maxauthtries|x11forwarding|allowtcpforwarding|ciphers|macs|kexalgorithms) '" ;;
        ss) echo "sudo -n ss -Hlntu" ;;
        nft) echo "sudo -n nft list ruleset | head -n 40" ;;
        services) echo "systemctl is-active chrony rsyslog" ;;
        rotate) echo "grep -rhE '^[[:space:]]*rotate[[:space:]]' /etc/logrotate.conf /etc/logrotate.d/" ;;
    esac
}

# The address guard, inline (the same rule as provnet/guard.py): a dotted-quad IPv4 literal inside
# 198.18.0.0/15 — first octet 198, second 18 or 19. No names (their resolution could lead anywhere), no
# leading zeros (inet_aton would read 198.022.0.1 as octal), no other range.
in_lab_range() {
    local octet='(0|[1-9][0-9]{0,2})'
    [[ $1 =~ ^$octet\.$octet\.$octet\.$octet$ ]] || return 1
    local a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]} c=${BASH_REMATCH[3]} d=${BASH_REMATCH[4]}
    ((a == 198 && (b == 18 || b == 19) && c <= 255 && d <= 255))
}

# Every host of `ansible-inventory --list` as `host<TAB>address<TAB>user<TAB>key`, each address through
# provnet's guard; exit 2 when any is refused (nothing printed for it).
LIST_PY='
import json, sys
from provnet import guard
from provnet.errors import AddressRefused
hostvars = json.load(sys.stdin).get("_meta", {}).get("hostvars", {})
refused = 0
for host, hv in sorted(hostvars.items()):
    address = str(hv.get("ansible_host", host))
    try:
        guard.check(address, purpose=f"ssh to {host} at")
    except AddressRefused as exc:
        print(exc, file=sys.stderr)
        refused += 1
        continue
    print(host, address, hv.get("ansible_user", "root"), hv.get("ansible_ssh_private_key_file", ""), sep="\t")
sys.exit(2 if refused else 0)
'

main() {
    local inv=inventory/thanhhoa-lab out=/tmp/provnet-bench/baseline opt
    while getopts "i:o:h" opt; do
        case $opt in
            i) inv=$OPTARG ;;
            o) out=$OPTARG ;;
            *) echo "usage: $0 [-i INVENTORY] [-o OUTDIR]" >&2; return 2 ;;
        esac
    done
    cd "$REPO" || return 2
    mkdir -p "$out" || return 2
    local listing
    if ! listing=$(ansible-inventory -i "$inv" --list 2>"$out/ansible-inventory.err" |
                   PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PY" -c "$LIST_PY"); then
        echo "plain_baseline: refused: no host of $inv was contacted (see above, $out/ansible-inventory.err)" >&2
        return 2
    fi
    local start=$SECONDS t0=${EPOCHREALTIME:-0} hosts=0 checks=0 failures=0 nonzero=0 host addr user key check rc
    : >"$out/summary.tsv"
    while IFS=$'\t' read -r host addr user key; do
        [[ -n $host ]] || continue
        # checked again right here, before this host's first connection
        if ! in_lab_range "$addr"; then
            echo "plain_baseline: refusing to ssh to $host at '$addr': outside 198.18.0.0/15" >&2
            return 2
        fi
        local -a opts=("${SSH_OPTS[@]}" -i "${key:-$LAB_KEY}")
        mkdir -p "$out/$host"
        hosts=$((hosts + 1))
        for check in "${CHECKS[@]}"; do
            "$SSH_BIN" "${opts[@]}" "$user@$addr" "$(check_command "$check")" >"$out/$host/$check.txt" 2>&1
            rc=$?
            checks=$((checks + 1))
            if ((rc == 255)); then
                failures=$((failures + 1))
            elif ((rc != 0)); then
                nonzero=$((nonzero + 1))
            fi
            printf '%s\t%s\t%s\n' "$host" "$check" "$rc" >>"$out/summary.tsv"
        done
    done <<<"$listing"
    local took=$((SECONDS - start))
    if [[ $t0 != 0 ]]; then
        took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    fi
    echo "baseline: $hosts hosts, $checks checks, $failures ssh failures, $nonzero non-zero, $took s"
    ((failures == 0)) || return 1
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
