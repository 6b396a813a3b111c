"""scripts/setup_comfyui_tests.sh's Python half (scripts/comfyui_host_setup.py): the requirement filter, and the two
CPU guards run as code: the guarded torchaudio loader and torchvision registration behave as intended, guarding is
idempotent (also over a hand-applied guard with the same marker), and an unknown file is refused, not patched."""
from __future__ import annotations

import os
import subprocess
import types
from pathlib import Path

import pytest

from script_modules import load_script

ROOT = Path(__file__).resolve().parents[1]


setup = load_script("comfyui_host_setup")

# ComfyUI 0.33.0's requirements.txt, as shipped (abridged only where lines repeat the pattern)
REQUIREMENTS_033 = """comfyui-frontend-package==1.49.6
comfyui-workflow-templates==0.11.44
comfyui-embedded-docs==0.5.10
torch
torchsde
torchvision
torchaudio
numpy>=1.25.0
transformers>=4.50.3
comfy-kitchen==0.2.31
comfy-aimdo==0.4.13
requests

#non essential dependencies:
kornia>=0.7.1
pydantic~=2.0
"""

# torchaudio 2.11.1's torchaudio/_extension/utils.py::_load_lib body, as on PyPI
TORCHAUDIO_LOAD_LIB = '''
def _load_lib(lib: str) -> bool:
    suffix = ".pyd" if os.name == "nt" else ".so"
    paths = list(_LIB_DIR.glob(f"{lib}*{suffix}"))
    if not paths:
        return False
    if len(paths) > 1:
        warnings.warn(f"Expected a single file path to {lib}, got {paths=}")
    torch.ops.load_library(paths[0])
    return True
'''

# torchvision 0.28.0's torchvision/_meta_registrations.py, the parts the guard touches
TORCHVISION_META = '''import functools

import torch


@functools.lru_cache(None)
def get_meta_lib():
    return torch.library.Library("torchvision", "IMPL", "Meta")


@torch.library.register_fake("torchvision::nms")
def meta_nms(dets, scores, iou_threshold):
    return "nms fake"


@torch.library.register_fake("torchvision::qnms")
def meta_qnms(dets, scores, iou_threshold):
    return "qnms fake"
'''


def test_requirements_leave_out_the_pinned_and_ui_packages_and_add_requests():
    lines = setup.host_requirements(REQUIREMENTS_033)
    assert lines == ["torchsde", "numpy>=1.25.0", "transformers>=4.50.3", "comfy-kitchen==0.2.31",
                     "comfy-aimdo==0.4.13", "requests", "kornia>=0.7.1", "pydantic~=2.0"]
    # 0.3.64 does not list requests; names are compared normalised (PEP 503)
    assert setup.host_requirements("Torch_Audio\nTORCH\ncomfyui_frontend.package==1.27.10\nav>=14.2.0 # video\n") == [
        "Torch_Audio", "av>=14.2.0", "requests"]
    assert setup.requirement_name("comfyui_frontend.Package==1") == "comfyui-frontend-package"


class _FakeLibDir:
    def __init__(self, names: list[str]):
        self.names = names

    def glob(self, pattern: str) -> list[Path]:
        return [Path(n) for n in self.names]


def _torchaudio_namespace(load_library) -> dict:
    torch = types.SimpleNamespace(ops=types.SimpleNamespace(load_library=load_library))
    return {"os": os, "warnings": __import__("warnings"), "torch": torch, "_LIB_DIR": _FakeLibDir(["libtorchaudio.so"])}


def _cuda_build_on_cpu_torch(path):
    raise OSError("libc10_cuda.so: cannot open shared object file: No such file or directory")


def test_torchaudio_guard_turns_the_cuda_library_oserror_into_no_extension():
    unguarded = _torchaudio_namespace(_cuda_build_on_cpu_torch)
    exec(TORCHAUDIO_LOAD_LIB, unguarded)
    with pytest.raises(OSError, match="libc10_cuda"):
        unguarded["_load_lib"]("libtorchaudio")

    guarded_source = setup.TORCHAUDIO_CPU_LOAD.apply(TORCHAUDIO_LOAD_LIB, "utils.py")
    guarded = _torchaudio_namespace(_cuda_build_on_cpu_torch)
    exec(guarded_source, guarded)
    assert guarded["_load_lib"]("libtorchaudio") is False  # "no extension": torchaudio's Python part imports

    loaded = []
    working = _torchaudio_namespace(loaded.append)
    exec(guarded_source, working)
    assert working["_load_lib"]("libtorchaudio") is True and loaded == [Path("libtorchaudio.so")]  # a CPU build


def _torchvision_namespace(ops: dict) -> dict:
    registered = []

    def register_fake(qualname):
        registered.append(qualname)
        return lambda fn: fn

    torch = types.SimpleNamespace(ops=types.SimpleNamespace(torchvision=types.SimpleNamespace(**ops)),
                                  library=types.SimpleNamespace(register_fake=register_fake, Library=None))
    return {"__name__": "meta", "registered": registered, "_torch": torch}


def test_torchvision_guard_registers_fakes_only_for_ops_that_exist():
    guarded_source = setup.TORCHVISION_FAKE_OPS.apply(TORCHVISION_META, "_meta_registrations.py")
    assert guarded_source.count("@_l2p_register_fake_if_op_exists(\"torchvision::") == 2
    body = guarded_source.replace("import functools\n\nimport torch\n", "import functools\ntorch = _torch\n")

    without_ops = _torchvision_namespace({})  # CPU torch + the CUDA wheel: the C++ ops are absent
    exec(body, without_ops)
    assert without_ops["registered"] == [] and without_ops["meta_nms"](0, 0, 0) == "nms fake"

    with_nms = _torchvision_namespace({"nms": object()})  # a build whose ops loaded: registered as upstream does
    exec(body, with_nms)
    assert with_nms["registered"] == ["torchvision::nms"]


@pytest.mark.parametrize("guard, source", [(setup.TORCHAUDIO_CPU_LOAD, TORCHAUDIO_LOAD_LIB),
                                           (setup.TORCHVISION_FAKE_OPS, TORCHVISION_META)],
                         ids=["torchaudio", "torchvision"])
def test_guarding_is_idempotent_and_refuses_unknown_text(guard, source):
    once = guard.apply(source, "f.py")
    assert once != source and guard.marker in once
    assert guard.apply(once, "f.py") == once  # a second run changes nothing
    by_hand = source.replace(guard.replacements[0][0], f"# {guard.marker}: applied by hand\n")
    assert guard.apply(by_hand, "f.py") == by_hand  # the same marker, put there by someone else: left alone
    with pytest.raises(setup.GuardError, match=f"{guard.package} 9.9 \\(x.py\\): expected the text"):
        guard.apply("def something_else():\n    pass\n", f"{guard.package} 9.9 (x.py)")


def test_guard_installed_writes_only_when_the_text_changes(tmp_path, monkeypatch):
    package = tmp_path / "torchaudio" / "_extension"
    package.mkdir(parents=True)
    target = package / "utils.py"
    target.write_text(TORCHAUDIO_LOAD_LIB)
    monkeypatch.setattr(setup, "installed_file", lambda guard: target)
    monkeypatch.setattr(setup.importlib.metadata, "version", lambda name: "2.11.1")
    assert setup.guard_installed(setup.TORCHAUDIO_CPU_LOAD) == f"torchaudio 2.11.1: guarded ({target})"
    guarded = target.read_text()
    mtime = target.stat().st_mtime_ns
    assert setup.guard_installed(setup.TORCHAUDIO_CPU_LOAD) == f"torchaudio 2.11.1: already guarded ({target})"
    assert target.read_text() == guarded and target.stat().st_mtime_ns == mtime
    assert not list(package.glob("*.l2p-tmp"))


def test_setup_script_refuses_a_folder_that_is_not_comfyui(tmp_path):
    out = subprocess.run(["bash", str(ROOT / "scripts" / "setup_comfyui_tests.sh"), str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"{tmp_path} is not a ComfyUI checkout" in out.stderr
