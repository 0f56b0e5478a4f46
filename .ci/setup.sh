#!/usr/bin/env bash
# Install what the tests need beyond the Python package (run as root; idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
# The Ray test isolates Ray in a loopback-only network namespace: unshare and ip.
if ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq iproute2 util-linux >/dev/null
fi
# The machine live hosts render has rsync (the fidelity corpus copies with it, as agents do).
if ! command -v rsync >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq rsync >/dev/null
fi
for step in start-docker install-vllm install-browser; do
    if [[ -f ".ci/$step.sh" ]]; then
        echo "[setup] $step"
        bash ".ci/$step.sh"
    fi
done
