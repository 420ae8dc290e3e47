#!/usr/bin/env bash
# All set-up for this project on a fresh Debian (bookworm) machine, as root.
# Idempotent: every step checks before it acts, so running it again is cheap.
#   hack/setup.sh            Debian packages + Python venv (.venv) + Kubernetes binaries
#                            + the component image (buildah)
#   SKIP_K8S_BUILD=1 ...     everything but the Kubernetes build (quick local hacking)
#   SKIP_IMAGE_BUILD=1 ...   everything but the component image (the local run builds it
#                            again from the working tree at its start anyway)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
step() { printf '\n==> [setup] %s\n' "$*"; }

step "Debian packages (hack/setup.sh: apt)"
hack/setup-debian.sh

step "Python virtual environment .venv (hack/setup.sh: venv)"
hack/setup-python.sh

if [ "${SKIP_K8S_BUILD:-0}" != "1" ]; then
  step "Kubernetes binaries (hack/setup.sh: k8s build, cached by version)"
  hack/k8s/build.sh
fi
if [ "${SKIP_IMAGE_BUILD:-0}" != "1" ]; then
  # the local run and the e2e tests run every component as a pod of this image
  step "component image tke-vpc-cni:dev (hack/setup.sh: image; buildah, cached layers)"
  hack/image/build.sh
fi
step "done"
