"""Predictor files inside real ComfyUI sampling (tiny models from ComfyUI's classes): the provenance and model identity
L2P Calibrate records, L2P Cache's identity check, a read-only or full models/l2p/, two ComfyUI processes
calibrating one file, and the folder created at registration.

Skipped, with the reason printed, when COMFYUI_PATH is unset."""
from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

import comfy_host
import comfy_sampling
import tiny_models
import tiny_specs
from comfy_node_cases import calibrate, l2p_cache, last_report
from file_cases import read_only

pytestmark = pytest.mark.comfy

HERE = Path(__file__).resolve().parent
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def module(pack, name):
    return sys.modules[f"{pack.module.__name__}.{name}"]


def load(pack, path):
    return pack.module.predictors.load_predictor_file(str(path))


def identity(pack, pf):
    return module(pack, "predictors.files.identity").identity_of(pf.extra, "file")


# ---------------------------------------------------------------------------------------------- provenance
def test_calibration_records_where_its_runs_came_from(pack, l2p_dir, comfy):
    tiny = tiny_models.tiny_flux(seed=40)
    cal = calibrate(pack, tiny)
    comfy_sampling.sample(cal, steps=6, cfg=1.0, seed=1)
    pf = load(pack, l2p_dir / "cal.safetensors")
    version = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]["version"]
    tag = module(pack, "predictors.files.provenance").machine_tag()
    assert (pf.sampler, pf.scheduler, pf.cfg_mode) == ("euler", "simple", "none")
    assert pf.extra["shift"] == "1.15" and pf.extra["denoise"] == "1" and pf.extra["pack_version"] == version
    assert ISO_UTC.match(pf.extra["created"]) and pf.extra["created"] == pf.extra["updated"]
    assert json.loads(pf.extra["contributors"]) == {tag: 1} and pf.extra["trajectory_count"] == "1"
    ident = identity(pack, pf)
    assert ident.model_class == "comfy.ldm.flux.model.Flux" and ident.config_name == "Flux"
    assert ident.config["guidance_embed"] is True and ident.config["hidden_size"] == 64
    assert ident.patches == "none" and set(ident.weights.dtypes.values()) == {"float32"}
    assert any(f"this machine's tag in the file's contributors: {tag}" in n for n in last_report(cal).notes)

    comfy_sampling.sample(cal, steps=6, cfg=1.0, seed=2, batch=2, sampler_name="dpmpp_2m")
    pf = load(pack, l2p_dir / "cal.safetensors")
    assert pf.sampler == "dpmpp_2m,euler" and pf.extra["trajectory_count"] == "3" and pf.sample_count == 3
    assert json.loads(pf.extra["contributors"]) == {tag: 3} and pf.extra["created"] <= pf.extra["updated"]

    qwen = tiny_models.tiny_qwen_image(seed=40)
    advanced = __import__("comfy_extras.nodes_model_advanced", fromlist=["ModelSamplingAuraFlow"])
    (shifted,) = comfy_host.run_node(advanced.ModelSamplingAuraFlow, model=qwen.patcher, shift=3.1)
    comfy_sampling.sample(calibrate(pack, shifted, "qwen.safetensors"), steps=6, cfg=3.0, seed=1,
                          sampler_name="uni_pc", scheduler="karras")
    pf = load(pack, l2p_dir / "qwen.safetensors")
    assert (pf.sampler, pf.scheduler, pf.cfg_mode, pf.extra["shift"]) == ("unipc", "karras", "cfg 3", "3.1")
    assert identity(pack, pf).model_class == "comfy.ldm.qwen_image.model.QwenImageTransformer2DModel"

    latent = torch.randn(tiny.latent_shape(1), generator=torch.Generator().manual_seed(0))
    comfy_sampling.sample(calibrate(pack, tiny, "partial.safetensors"), steps=6, cfg=1.0, seed=1, denoise=0.5,
                          latent=latent)
    pf = load(pack, l2p_dir / "partial.safetensors")
    assert re.fullmatch(r"partial \(sigmas 0\.\d+ to 0 of 1\)", pf.extra["denoise"]) and pf.scheduler == "unknown"

    sigmas = comfy_sampling.scheduler_sigmas(tiny, steps=6)  # the first half of a split run (two samplers, or experts)
    comfy_sampling.sample_sigmas(calibrate(pack, tiny, "first-half.safetensors"), sigmas=sigmas[:4], cfg=1.0, seed=1)
    pf = load(pack, l2p_dir / "first-half.safetensors")
    assert re.fullmatch(r"partial \(sigmas 1 to 0\.\d+ of 1\)", pf.extra["denoise"]), pf.extra["denoise"]
    assert pf.sampler == "euler" and pf.scheduler == "unknown"


# ---------------------------------------------------------------------------------------------- identity
def tiny_schnell(comfy, seed):
    """FLUX.1-schnell's config (no guidance embedding) at the tiny size: the same class as dev, another config."""
    unet = tiny_models.host_unet_config(tiny_specs.Family.FLUX, {**tiny_specs.FLUX_TINY, "guidance_embed": False})
    model_config = comfy.supported_models.FluxSchnell(unet)
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({}, "").to(comfy.model_management.unet_offload_device())
    tiny_models.init_weights(model.diffusion_model, seed)
    return tiny_models.as_tiny(comfy.model_patcher.ModelPatcher(
        model, load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device()))


def with_lora(pack, tiny, seed=0):
    """A clone of ``tiny`` with a diff patch on one weight, the way LoRA and merge patches reach the patcher. The
    weight is one the identity fingerprints, so a test sees whether the base values are read while ComfyUI has
    the patch applied in place."""
    lora = tiny.patcher.clone()
    name = sorted(module(pack, "nodes.model_identity").model_identity(tiny.diffusion_model).weights.values)[0]
    param = dict(tiny.diffusion_model.named_parameters())[name]
    delta = 0.05 * torch.randn(param.shape, generator=torch.Generator().manual_seed(seed))
    assert lora.add_patches({"diffusion_model." + name: (delta,)}, 1.0)
    return tiny_models.as_tiny(lora)


def test_l2p_cache_uses_a_file_only_on_its_model_or_where_other_model_allows(pack, l2p_dir, comfy):
    base = tiny_models.tiny_flux(seed=41)
    comfy_sampling.sample(calibrate(pack, base), steps=6, cfg=1.0, seed=1)
    allow = dict(other_model="allow LoRA / fine-tune")

    fine_tune = tiny_models.tiny_flux(seed=42)  # same class and config, other weights
    with pytest.raises(ValueError, match=r"cal\.safetensors.*other weights of the same architecture.*"
                                         r"set other_model to 'allow LoRA / fine-tune'"):
        comfy_sampling.sample(l2p_cache(pack, fine_tune), steps=6, cfg=1.0, seed=2)
    cached = l2p_cache(pack, fine_tune, **allow)
    comfy_sampling.sample(cached, steps=6, cfg=1.0, seed=2)
    assert any("other weights" in n and "other_model allows it" in n for n in last_report(cached).notes)

    lora = with_lora(pack, base)
    with pytest.raises(ValueError, match="other LoRA / weight patches.*file none, model 1 key "):
        comfy_sampling.sample(l2p_cache(pack, lora), steps=6, cfg=1.0, seed=2)
    cached = l2p_cache(pack, lora, **allow)
    comfy_sampling.sample(cached, steps=6, cfg=1.0, seed=2)  # ComfyUI patches the LoRA into the shared weights
    assert any("other LoRA" in n for n in last_report(cached).notes)
    assert set(lora.patcher.patches) <= set(base.patcher.backup)  # ComfyUI applied the patch in place
    cached = l2p_cache(pack, base)  # the base model right after, its weight still patched in place: recognised
    comfy_sampling.sample(cached, steps=6, cfg=1.0, seed=2)
    assert not any("calibrated on" in n for n in last_report(cached).notes)

    schnell = tiny_schnell(comfy, seed=41)
    # FLUX.1-schnell is its own family (nodes/architectures.py: config FluxSchnell), refused before the identity
    schnell_refused = r"family 'flux' \(FLUX.1-dev / Kontext\).*'flux_schnell' \(FLUX.1-schnell\)"
    with pytest.raises(ValueError, match=schnell_refused) as err:
        comfy_sampling.sample(l2p_cache(pack, schnell, **allow), steps=6, cfg=1.0, seed=2)
    assert "other_model" not in str(err.value)  # nothing a user may allow

    pf = load(pack, l2p_dir / "cal.safetensors")  # a file made before identities: still used, with a note
    old = type(pf)(**{**{f: getattr(pf, f) for f in ("steps", "model_family", "model_class", "sigmas", "gram",
                                                     "sample_count", "element_count", "ridge_lambda")},
                      "extra": {k: v for k, v in pf.extra.items() if k != "model_identity"}})
    pack.module.predictors.save_predictor_file(l2p_dir / "old.safetensors", old)
    cached = l2p_cache(pack, fine_tune, "old.safetensors")
    comfy_sampling.sample(cached, steps=6, cfg=1.0, seed=2)
    assert any("records no model identity" in n for n in last_report(cached).notes)


def test_calibrate_refuses_to_extend_a_file_of_another_model(pack, l2p_dir):
    comfy_sampling.sample(calibrate(pack, tiny_models.tiny_flux(seed=43)), steps=6, cfg=1.0, seed=1)
    before = (l2p_dir / "cal.safetensors").read_bytes()
    with pytest.raises(ValueError, match=r"cal\.safetensors.*other weights.*Choose another file_name"):
        comfy_sampling.sample(calibrate(pack, tiny_models.tiny_flux(seed=44)), steps=6, cfg=1.0, seed=1)
    assert (l2p_dir / "cal.safetensors").read_bytes() == before


# ---------------------------------------------------------------------------------------------- faults
def test_a_read_only_or_full_models_folder_loses_only_the_recording(pack, l2p_dir, monkeypatch):
    tiny = tiny_models.tiny_flux(seed=45)
    cal = calibrate(pack, tiny)
    comfy_sampling.sample(cal, steps=6, cfg=1.0, seed=1)
    path = l2p_dir / "cal.safetensors"
    before = path.read_bytes()
    plain = comfy_sampling.sample(tiny, steps=6, cfg=1.0, seed=2)
    with read_only(l2p_dir):
        for node in (cal, calibrate(pack, tiny, "new.safetensors")):
            out = comfy_sampling.sample(node, steps=6, cfg=1.0, seed=2)
            assert torch.equal(out, plain)  # the image is the run's own
            report = last_report(node)
            assert report.status == "finished"
            assert any("calibration NOT saved" in n and "cannot be written" in n for n in report.notes), report.notes
    assert path.read_bytes() == before and not (l2p_dir / "new.safetensors").exists()

    def disk_full(handle, data):
        handle.write(data[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module(pack, "predictors.files.storage"), "_write_bytes", disk_full)
    assert torch.equal(comfy_sampling.sample(cal, steps=6, cfg=1.0, seed=2), plain)
    assert any("NOT saved" in n and "No space left on device" in n for n in last_report(cal).notes)
    assert path.read_bytes() == before
    assert sorted(p.name for p in l2p_dir.iterdir()) == [".cal.safetensors.lock", "cal.safetensors"]


def test_a_file_dropped_in_that_fails_validation_is_named_and_never_modified(pack, l2p_dir):
    bad = l2p_dir / "cal.safetensors"
    bad.write_bytes(b"\x80\x04 not ours")
    with pytest.raises(ValueError, match="cal.safetensors.*pickle"):
        comfy_sampling.sample(calibrate(pack, tiny_models.tiny_flux(seed=46)), steps=6, cfg=1.0, seed=1)
    assert bad.read_bytes() == b"\x80\x04 not ours"
    weights_only = pack.module.predictors.PredictorFile(steps=6, model_family="flux", model_class="Flux",
                                                        paper_matrix=np.eye(6))
    pack.module.predictors.save_predictor_file(bad, weights_only)
    before = bad.read_bytes()
    with pytest.raises(ValueError, match="cal.safetensors.*holds only a weight matrix") as err:
        comfy_sampling.sample(calibrate(pack, tiny_models.tiny_flux(seed=46)), steps=6, cfg=1.0, seed=1)
    assert "NOT saved" not in str(err.value) and bad.read_bytes() == before


def test_two_comfyui_processes_calibrating_one_file_lose_nothing(pack, l2p_dir):
    go, runs = l2p_dir / "go", 25
    env = {**os.environ, comfy_host.ENV_VAR: str(comfy_host.comfyui_path())}
    workers = [subprocess.Popen([sys.executable, str(HERE / "comfy_calibrate_worker.py"), str(l2p_dir), str(w),
                                 str(runs), str(go)], env=env, stderr=subprocess.PIPE, text=True) for w in (1, 2)]
    time.sleep(0.5)
    go.touch()
    results = [(w.wait(timeout=600), w.stderr.read()) for w in workers]
    assert [rc for rc, _ in results] == [0, 0], results
    shared, own = load(pack, l2p_dir / "shared.safetensors"), [load(pack, l2p_dir / f"own{w}.safetensors")
                                                               for w in (1, 2)]
    assert shared.sample_count == 2 * runs == sum(pf.sample_count for pf in own)
    np.testing.assert_allclose(shared.gram, own[0].gram + own[1].gram, rtol=1e-12, atol=0)
    tag = module(pack, "predictors.files.provenance").machine_tag()
    assert json.loads(shared.extra["contributors"]) == {tag: 2 * runs}


# ---------------------------------------------------------------------------------------------- the folder
def test_registration_creates_models_l2p_and_survives_a_read_only_disk(pack, tmp_path, monkeypatch, caplog):
    import folder_paths

    files = module(pack, "nodes.files")
    target = tmp_path / "models" / "l2p"
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "l2p", ([str(target)], {".safetensors", ".txt"}))
    files._create_folder.cache_clear()
    files.register_folder()
    assert target.is_dir()
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "l2p", ([str(locked / "l2p")], {".safetensors"}))
    with read_only(locked):
        files._create_folder.cache_clear()
        files.register_folder()  # never raises: a read-only disk must not stop ComfyUI's startup
        assert not any(p.endswith("l2p") and "locked" in p and os.path.isdir(p)
                       for p in folder_paths.get_folder_paths("l2p"))
    assert any("cannot create the predictor folder" in r.getMessage() for r in caplog.records)
    files._create_folder.cache_clear()
