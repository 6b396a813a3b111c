#!/usr/bin/env bash
# Prepare this machine to run the real-ComfyUI tests against a ComfyUI checkout (CPU-only torch).
#   bash scripts/setup_comfyui_tests.sh /path/to/ComfyUI
#   COMFYUI_PATH=/path/to/ComfyUI python3 -m pytest -q
# Installs ComfyUI's Python requirements with torch pinned to the local CPU build (never an unpinned torch),
# torchvision without its dependencies, and guards torchvision's two fake-op registrations that fail at import
# on CPU-only torch (ComfyUI's model code only needs torchvision's pure-Python transforms).
set -euo pipefail
comfy="${1:?usage: $0 /path/to/ComfyUI}"
[ -f "$comfy/comfy/model_patcher.py" ] || { echo "$comfy is not a ComfyUI checkout (no comfy/model_patcher.py)" >&2; exit 2; }
reqs=$(grep -vE '^\s*(#|$)|^(torch|torchvision|torchaudio|comfyui-frontend-package)\b' "$comfy/requirements.txt")
# shellcheck disable=SC2086
python3 -m pip install -q torch==2.13.0 $reqs requests
python3 -m pip install -q --no-deps torchvision==0.28.0
meta=$(python3 -c "import importlib.util as u; print(u.find_spec('torchvision').submodule_search_locations[0])")/_meta_registrations.py
python3 - "$meta" <<'PY'
import sys
path = sys.argv[1]
src = open(path).read()
if "_l2p_register_fake_if_op_exists" not in src:
    guard = '''

def _l2p_register_fake_if_op_exists(qualname):
    # CPU torch + PyPI torchvision: the C++ ops are absent, so registering fakes for them fails at import.
    ns, op = qualname.split("::")
    if not hasattr(getattr(torch.ops, ns), op):
        return lambda fn: fn
    return torch.library.register_fake(qualname)
'''
    src = src.replace('@torch.library.register_fake("torchvision::', '@_l2p_register_fake_if_op_exists("torchvision::')
    src = src.replace("\n\n@functools.lru_cache(None)", guard + "\n\n@functools.lru_cache(None)", 1)
    open(path, "w").write(src)
print("torchvision guarded:", path)
PY
python3 -c "import sys; sys.path.insert(0, '$comfy'); import comfy.options, comfy.cli_args; comfy.cli_args.args.cpu = True; import utils.extra_config, comfy.model_base; print('ComfyUI imports: ok')"
