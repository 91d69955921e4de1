#!/usr/bin/env bash
# Install everything the RAP toolkit needs on a fresh Debian machine, as root.
# Idempotent: a second run only checks. Downloads and builds are cached under
# $RAP_CACHE (default ~/.cache/rap), which survives fresh clones on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "error: scripts/install.sh installs system packages and must run as root (try: sudo $0)" >&2
    exit 1
fi

# System packages: network namespaces and iptables for the local cluster,
# etcd for its API server, conntrack/ipset as kube-proxy expects, haproxy for
# the haproxy and haproxy-leastconn peers (rap/localcluster/haproxy), gcc and
# libc6-dev for cgo, which go test -race needs (invoke test-proxy), and for the
# static pause binary (rap/build/pause.py); containerd (with ctr), runc and the
# CNI plugins for the local cluster's real nodes, one containerd per node;
# debootstrap for the base of the images built without a Docker engine
# (rap/build/baseroot.py).
APT_PACKAGES=(iproute2 iptables conntrack ipset etcd-server etcd-client haproxy procps psmisc curl ca-certificates
              openssl gcc libc6-dev containerd runc containernetworking-plugins debootstrap)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # Debian starts etcd as a service on install; the local cluster runs its own.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
    pkill -x etcd >/dev/null 2>&1 || true
    # Likewise haproxy: the peers run one per node namespace. Its init script stops
    # only the service's own process (by /run/haproxy.pid), never a cluster's.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now haproxy >/dev/null 2>&1 || true; fi
    if [ -x /etc/init.d/haproxy ]; then /etc/init.d/haproxy stop >/dev/null 2>&1 || true; fi
    if command -v update-rc.d >/dev/null 2>&1; then update-rc.d haproxy disable >/dev/null 2>&1 || true; fi
    # Likewise containerd: each real node runs its own, with its own root, state
    # and socket. Debian ships it as a systemd unit only (no init script), so
    # systemd stops just the service's process; no pkill, which could hit a
    # node's. disable works without a running systemd too (it drops the link).
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now containerd >/dev/null 2>&1 || true; fi
else
    say "system packages present"
fi

command -v go >/dev/null 2>&1 || {
    echo "error: Go is not on PATH; install Go >= 1.21 (Debian: apt-get install golang-go) and re-run" >&2
    exit 1
}

say "installing the rap Python package and its test and cloud tools"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[test,cloud]"

say "installing terraform (built from source through the Go module proxy, cached)"
python3 -m invoke install-terraform

say "building the hashicorp/google provider 4.9 for an offline terraform validate (cached under \$RAP_CACHE/terraform/mirror)"
python3 -m rap.cloud.provider

say "building kube-proxy (RAP and stock), kube-apiserver, kubelet, kube-controller-manager, kube-scheduler v1.21.14 and pause (cached under \$RAP_CACHE)"
python3 -m invoke build-proxy --stock --apiserver --node-binaries --no-test

say "building the local image registry (distribution v3, cached in build/out/registry)"
python3 -m rap.build.registry build

say "install complete"
