#!/bin/sh
# Install everything provnet needs on a fresh Debian 12 machine (run as root).
# Idempotent: re-running only installs what is missing.
set -eu
cd "$(dirname "$0")/.."

DEBS="python3 python3-venv python3-pip git make openssh-client debootstrap systemd-container iproute2 nftables util-linux libpango-1.0-0 libpangoft2-1.0-0 liblognorm-utils"
missing=""
for p in $DEBS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "bootstrap: installing Debian packages:$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

VENV=${PROVNET_VENV:-.venv}
stamp="$VENV/.provnet-requirements"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# requirements-nodeps.txt: packages whose declared pins conflict with ours but that work (see the file)
if ! cat requirements.txt requirements-nodeps.txt pyproject.toml | cmp -s - "$stamp" 2>/dev/null; then
    "$VENV/bin/pip" install -q -r requirements.txt
    "$VENV/bin/pip" install -q --no-deps -r requirements-nodeps.txt
    "$VENV/bin/pip" install -q --no-deps -e .
    cat requirements.txt requirements-nodeps.txt pyproject.toml > "$stamp"
fi
