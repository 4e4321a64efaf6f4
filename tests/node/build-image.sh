#!/usr/bin/env bash
# Build the Debian systemd image the molecule node scenarios run on, unless it
# is already in the local Docker engine: istio-lab-node:<suite>.
#   tests/node/build-image.sh bookworm|trixie
# The root filesystem comes from debootstrap against the Debian mirror this
# machine's apt already uses (the only package source reachable in CI); set
# ISTIO_LAB_DEBIAN_MIRROR to override. Needs root, debootstrap and docker.
set -euo pipefail
suite=${1:?usage: build-image.sh <debian suite>}
image="istio-lab-node:${suite}"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image already built"
  exit 0
fi

mirror_from_apt_sources() {
  # deb822 files (URIs: ...) first, then one-line sources (deb URL suite ...).
  local uri
  uri=$(grep -hsE '^URIs:.*debian/?$' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v security | head -n1 | awk '{print $2}')
  if [ -z "$uri" ]; then
    uri=$(grep -hsE '^deb\s+(\[[^]]*\]\s+)?https?://\S+/debian/?\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | grep -v security | head -n1 | sed -E 's/^deb\s+(\[[^]]*\]\s+)?//' | awk '{print $1}')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
mirror=${ISTIO_LAB_DEBIAN_MIRROR:-$(mirror_from_apt_sources)}

rootfs=$(mktemp -d "/tmp/istio-lab-node-${suite}.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

# minbase + what a cloud VM always has and Ansible needs: Python (with apt
# bindings for the apt module), systemd as PID 1 and D-Bus for systemctl.
debootstrap --variant=minbase \
  --include=python3,python3-apt,systemd,systemd-sysv,dbus,ca-certificates \
  "$suite" "$rootfs" "$mirror"

# The mirror debootstrap used, with the suite's updates, as a VM would have.
printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$suite" "$mirror" "$suite" \
  > "$rootfs/etc/apt/sources.list"
# A container gets its machine-id, hostname and resolv.conf from the engine.
: > "$rootfs/etc/machine-id"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'ENV container=docker' \
  - "$image"
echo "built $image"
