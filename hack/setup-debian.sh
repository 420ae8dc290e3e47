#!/usr/bin/env bash
# Debian packages the tests and the local run need. Skips apt when all are present.
set -euo pipefail
pkgs=(iproute2 iputils-ping iptables nftables procps psmisc kmod
      containernetworking-plugins containerd runc busybox-static
      ca-certificates curl openssl jq
      buildah debootstrap  # the image: hack/image/build.sh (kernel overlay as root, chroot RUNs)
      iperf3 sockperf  # bench.datapath (docs/cni.md "Data path benchmark")
      wrk)  # bench.lb (docs/cni.md "Load balancer straight to pods")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "all Debian packages present"
  exit 0
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts nothing here (no systemd), and containerd must not run unless a test starts it.
