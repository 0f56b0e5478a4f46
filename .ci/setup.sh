#!/usr/bin/env bash
# Install what the tests need beyond the Python package (run as root; idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
for step in start-docker install-vllm install-browser; do
    if [[ -f ".ci/$step.sh" ]]; then
        echo "[setup] $step"
        bash ".ci/$step.sh"
    fi
done
