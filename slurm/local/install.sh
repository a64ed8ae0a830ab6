#!/usr/bin/env bash
# Install the Debian packages for a one-node SLURM cluster with accounting (see README.md).
# Idempotent: does nothing when every package is already installed. Needs root and apt-get.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

die() { echo "install.sh: $*" >&2; exit 1; }

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install.sh: already installed: ${PACKAGES[*]}"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root to install ${missing[*]} (try: sudo $0)"
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian/Ubuntu only"

echo "install.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when a first install attempt cannot find the packages.
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "install.sh: done"
