#!/usr/bin/env bash
# Prepare this machine to run the real-ComfyUI tests against a ComfyUI checkout, with CPU-only torch.
#   bash scripts/setup_comfyui_tests.sh /path/to/ComfyUI
#   COMFYUI_PATH=/path/to/ComfyUI python3 -m pytest -q
# Works for ComfyUI 0.3.64 through 0.33 (it reads the checkout's version and its requirements.txt). Steps:
# 1. ComfyUI's Python requirements (comfy-kitchen, comfy-aimdo, ... as that version pins them) with torch pinned by
#    a constraints file, so pip never replaces the local CPU torch; the server's UI packages are left out;
# 2. torchvision and torchaudio at the versions built against that torch (PyPI has CUDA builds only);
# 3. the guards that make those two import on CPU torch (scripts/comfyui_host_setup.py says why);
# 4. a check that imports what the tests import (comfy.sd, nodes, execution, comfy_api, torchaudio, torchvision),
#    loads comfy_extras and the pack as ComfyUI's startup does and finds every node type the example workflows
#    use: it prints "imports ok" only when all of that works, and exits 1 otherwise.
# Idempotent: a second run installs nothing, patches nothing and prints the same check.
set -euo pipefail
TORCH_VERSION="${L2P_TORCH_VERSION:-2.13.0}"
TORCHVISION_VERSION="${L2P_TORCHVISION_VERSION:-0.28.0}"  # its wheel requires exactly torch 2.13.0
TORCHAUDIO_VERSION="${L2P_TORCHAUDIO_VERSION:-2.11.1}"    # the newest on PyPI that accepts torch 2.13 (torch>=2.11)

here="$(cd "$(dirname "$0")" && pwd)"
comfy="${1:?usage: $0 /path/to/ComfyUI}"
[ -f "$comfy/comfy/model_patcher.py" ] && [ -f "$comfy/requirements.txt" ] || {
  echo "$comfy is not a ComfyUI checkout (expected comfy/model_patcher.py and requirements.txt there)" >&2; exit 2; }
comfy="$(cd "$comfy" && pwd)"
version="$(sed -nE 's/^__version__ *= *["'\'']([^"'\'']+)["'\''].*/\1/p' "$comfy/comfyui_version.py" 2>/dev/null || true)"
echo "setup: ComfyUI ${version:-(no comfyui_version.py)} at $comfy; torch $TORCH_VERSION (CPU)"

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
printf 'torch==%s\n' "$TORCH_VERSION" > "$constraints"
pip=(python3 -m pip install -q --disable-pip-version-check -c "$constraints")

mapfile -t reqs < <(python3 "$here/comfyui_host_setup.py" requirements "$comfy")
"${pip[@]}" "torch==$TORCH_VERSION" "${reqs[@]}"
"${pip[@]}" --no-deps "torchvision==$TORCHVISION_VERSION"  # its other needs (numpy, pillow) are ComfyUI's too
"${pip[@]}" "torchaudio==$TORCHAUDIO_VERSION"
python3 "$here/comfyui_host_setup.py" guard
python3 "$here/comfyui_host_setup.py" check "$comfy"
