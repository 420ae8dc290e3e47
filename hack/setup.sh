#!/usr/bin/env bash
# All set-up for this project on a fresh Debian (bookworm) machine, as root.
# Idempotent: every step checks before it acts, so running it again is cheap.
#   hack/setup.sh            Debian packages + Python venv (.venv) + Kubernetes binaries
#   SKIP_K8S_BUILD=1 ...     everything but the Kubernetes build (quick local hacking)
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
step "done"
