"""The run state under today's host, inside real ComfyUI sampling on tiny models (both hosts): reports per clone,
what other packs' wrappers see, inputs with extra concat channels, conditioning that changes during a run, and
ComfyUI 0.33's multi-GPU CFG split driven through the host's own threaded path on two CPU "devices".

Skipped, with the reason printed, when COMFYUI_PATH is unset; the multi-GPU tests are skipped on a host without
the split (ComfyUI 0.3.64).
"""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch

import comfy_host
import comfy_sampling
import pass_counter
import tiny_models
from comfy_node_cases import calibrate, forecast_cache

pytestmark = pytest.mark.comfy

DM = "diffusion_model"  # WrappersMP.DIFFUSION_MODEL
TWO_DEVICES = (torch.device("cpu"), torch.device("cpu", 0))


def holder(patched):
    return patched.model_options["transformer_options"]["l2p"]


def test_callback_and_wrapper_names_are_the_hosts(pack, comfy):
    from comfy.patcher_extension import CallbacksMP, WrappersMP

    holder_mod = pack.module.nodes.holder
    run_state = pack.module.nodes.run_state
    assert CallbacksMP.ON_CLONE in holder_mod.CLONE_CALLBACKS
    for name in ("ON_DEEPCLONE_MULTIGPU", "ON_MATCH_MULTIGPU_CLONES"):  # 0.33 only
        if hasattr(CallbacksMP, name):
            assert getattr(CallbacksMP, name) in holder_mod.CLONE_CALLBACKS
    assert WrappersMP.DIFFUSION_MODEL == DM and set(run_state.INNERMOST_WRAPPER_TYPES) <= set(vars(WrappersMP).values())


def test_each_clone_keeps_its_own_reports(pack):
    tiny = tiny_models.tiny_flux(seed=31)
    patched = forecast_cache(pack, tiny)
    comfy_sampling.sample(patched, steps=6, cfg=1.0, seed=1)
    comfy_sampling.sample(patched, steps=6, cfg=1.0, seed=2)
    clone = patched.clone()  # what a downstream node (LoRA, ModelSampling..., a second sampler branch) does
    comfy_sampling.sample(clone, steps=6, cfg=1.0, seed=3)
    assert holder(clone) is not holder(patched) and holder(clone).start_run is holder(patched).start_run
    assert [len(holder(patched).reports), len(holder(clone).reports)] == [2, 1]
    assert len(holder(clone.clone()).reports) == 0


def _counting(name: str, log: list):
    def wrapper(executor, *args, **kwargs):
        log.append(name)
        return executor(*args, **kwargs)
    return wrapper


def test_other_packs_wrappers_see_every_call_wherever_they_are(pack, comfy):
    """Pinned on both hosts: L2P's wrapper is innermost, so every other DIFFUSION_MODEL wrapper (registered on the
    patcher or on model_options, before or after the L2P node) sees each of the 8 calls, while the transformer
    runs 4 times. Among themselves the others keep the host's order: ComfyUI 0.33 puts model_options wrappers
    outside patcher ones (#10362), 0.3.64 the other way round."""
    pe = comfy.patcher_extension
    log: list[str] = []
    tiny = tiny_models.tiny_flux(seed=32)
    base = tiny.patcher.clone()
    base.add_wrapper_with_key(DM, "before.patcher", _counting("before.patcher", log))
    pe.add_wrapper_with_key(DM, "before.options", _counting("before.options", log), base.model_options, True)
    after = forecast_cache(pack, base, speedup=2.0).clone()
    after.add_wrapper_with_key(DM, "after.patcher", _counting("after.patcher", log))
    pe.add_wrapper_with_key(DM, "after.options", _counting("after.options", log), after.model_options, True)
    with pass_counter.count_passes(tiny) as counter:
        comfy_sampling.sample(after, steps=8, cfg=1.0, seed=1)
    assert counter.dm_calls == 8 and counter.forwards == 4 == len(holder(after).reports[-1].planned_computed)
    names = ["before.patcher", "before.options", "after.patcher", "after.options"]
    assert {n: log.count(n) for n in names} == {n: 8 for n in names}
    options_outside = next(iter(pe.merge_nested_dicts({"t": {"options": 1}}, {"t": {"patcher": 1}})["t"])) == "options"
    expected = (["before.options", "after.options", "before.patcher", "after.patcher"] if options_outside
                else ["before.patcher", "after.patcher", "before.options", "after.options"])
    assert log[:4] == expected


def test_input_with_extra_concat_channels(pack):
    """A FLUX with 32 input channels (16 latent + 16 concat image, as FLUX depth/canny/Kontext-style models):
    ComfyUI concatenates the extra channels into x; L2P keeps and forecasts the 16-channel output only."""
    tiny = tiny_models.tiny_flux(seed=33, in_channels=32)
    recorder, records = pass_counter.record_diffusion_model_args(forecast_cache(pack, tiny))
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_sampling.sample(recorder, steps=10, cfg=1.0, seed=2)
    assert {args[0].shape[1] for args, _ in records} == {32} and out.shape == (1, 16, 8, 8)
    assert counter.forwards == 4 and counter.dm_calls == 10 and torch.isfinite(out).all()
    full = comfy_sampling.sample(tiny, steps=10, cfg=1.0, seed=2)
    assert torch.equal(comfy_sampling.sample(forecast_cache(pack, tiny, speedup=1.0), steps=10, cfg=1.0, seed=2), full)


def _ranged_positive(tiny, switch: float):
    """Two positive prompts by timestep range (ConditioningSetTimestepRange): A until ``switch``, then B (both
    ranges include the switch: pick one that falls between two steps' sigmas)."""
    a = comfy_sampling.make_conditioning(tiny, seed=11)[0]
    b = comfy_sampling.make_conditioning(tiny, seed=12)[0]
    return [[a[0], {**a[1], "start_percent": 0.0, "end_percent": switch}],
            [b[0], {**b[1], "start_percent": switch, "end_percent": 1.0}]]


def test_conditioning_that_changes_during_the_run(pack):
    tiny = tiny_models.tiny_flux(seed=34)
    patched = forecast_cache(pack, tiny)  # planned (0, 1, 4, 7) of 10
    positive = _ranged_positive(tiny, 0.55)
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_sampling.sample(patched, steps=10, cfg=2.0, seed=3, positive=positive, negative_text_len=6)
    report = holder(patched).reports[-1]
    b = report.streams["cond#2"]
    switch = min(b.computed + b.forecast)
    assert switch not in report.planned_computed  # B takes over on a forecast step ...
    assert (switch, "stream without history (a conditioning that was not computed before)") in \
        {(s, r) for s, _, r in report.forced}  # ... so its first step is computed, the rest forecast
    assert b.computed == [switch] + [s for s in report.planned_computed if s > switch]
    assert counter.forwards == 2 * len(report.planned_computed) + 1 and torch.isfinite(out).all()


def test_calibration_records_a_conditioning_that_changes_during_the_run_by_role(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=35)
    cal = calibrate(pack, tiny, "ranged.safetensors")
    comfy_sampling.sample(cal, steps=6, cfg=2.0, seed=1, positive=_ranged_positive(tiny, 0.55))
    assert holder(cal).reports[-1].status == "finished"
    pf = pack.module.predictors.load_predictor_file(os.path.join(l2p_dir, "ranged.safetensors"))
    assert pf.roles == ("cond", "uncond") and pf.sample_count == 1 and pf.steps == 6


# ------------------------------------------------------------------------------------------ multi-GPU split


@pytest.fixture()
def two_cpu_devices(comfy, monkeypatch):
    """ComfyUI sees two devices: torch.device("cpu") and torch.device("cpu", 0) are distinct dict keys, so the
    host schedules conds to both and runs its MultiGPUThreadPool threads; tensors on either are CPU tensors."""
    if not hasattr(comfy.model_patcher.ModelPatcher, "deepclone_multigpu"):
        pytest.skip(f"ComfyUI {comfy_host.comfyui_version(comfy.path)} has no multi-GPU CFG split (comfy.multigpu)")
    import comfy.multigpu

    mm = comfy.model_management
    monkeypatch.setattr(mm, "get_all_torch_devices", lambda exclude_current=False: list(TWO_DEVICES))
    yield comfy.multigpu
    mm.unload_all_models()  # the replica stays loaded on "cpu:0" otherwise


def loadable_tiny_flux(seed: int):
    """A tiny FLUX whose patcher can be loaded again, as a core loader's can (cached_patcher_init): the host
    deep-clones it per device from a fresh load."""
    tiny = tiny_models.tiny_flux(seed=seed)
    tiny.patcher.cached_patcher_init = (lambda: tiny_models.tiny_flux(seed=seed).patcher, ())
    return tiny


def split_then_l2p(multigpu, node, tiny):
    return node(multigpu.create_multigpu_deepclones(tiny.patcher, 2))


def l2p_then_split(multigpu, node, tiny):
    return multigpu.create_multigpu_deepclones(node(tiny.patcher), 2)


class ThreadLog:
    """A DIFFUSION_MODEL wrapper (outside L2P's) recording which thread and device made each call."""

    def __init__(self):
        self.calls: list[tuple[str, object, tuple]] = []
        self._lock = threading.Lock()

    def __call__(self, executor, *args, **kwargs):
        to = args[-1]
        with self._lock:
            self.calls.append((threading.current_thread().name, to.get("multigpu_thread_device"),
                               tuple(to["cond_or_uncond"])))
        return executor(*args, **kwargs)


def replicas(model):
    return model.get_additional_models_with_key("multigpu")


@pytest.mark.parametrize("order", [split_then_l2p, l2p_then_split], ids=["split-then-l2p", "l2p-then-split"])
@pytest.mark.parametrize("placement", ["even", "adaptive"])
def test_multigpu_split_matches_a_single_device_run(pack, two_cpu_devices, order, placement):
    tiny = loadable_tiny_flux(seed=36)
    node = lambda patcher: forecast_cache(pack, patcher, placement=placement)  # noqa: E731
    single = node(tiny.patcher)
    # a negative of another length: one device also runs cond and uncond as separate calls, the same passes
    kw = dict(steps=10, cfg=2.0, seed=4, negative_text_len=6)
    ref = comfy_sampling.sample(single, **kw)
    split = order(two_cpu_devices, node, tiny)
    log = ThreadLog()
    split.add_wrapper_with_key(DM, "test.threads", log)
    (replica,) = replicas(split)
    with pass_counter.count_passes(tiny) as main, pass_counter.count_passes(replica) as other:
        out = comfy_sampling.sample(split, **kw)
    assert torch.equal(out, ref)
    got, want = holder(split).reports[-1], holder(single).reports[-1]
    assert got.status == "finished" and got.transformer_calls == want.transformer_calls
    assert got.forecast_calls == want.forecast_calls and got.forced == want.forced
    for name in ("cond", "uncond"):
        assert got.streams[name].computed == want.streams[name].computed
        assert got.streams[name].forecast == want.streams[name].forecast
    computed = len(want.streams["cond"].computed)
    assert main.forwards == other.forwards == computed and main.dm_calls == other.dm_calls == 10
    threads = {(name, device) for name, device, _ in log.calls}  # the host's pool: one thread per device
    assert len(log.calls) == 20 and len(threads) == 2 and {device for _, device in threads} == set(TWO_DEVICES)
    assert threading.current_thread().name not in {name for name, _ in threads}
    for r in replicas(split):  # a device replica is the same MODEL: it carries the main model's holder
        assert holder(r) is holder(split)


def test_multigpu_calibration_records_every_threads_conds_once(pack, two_cpu_devices, l2p_dir):
    tiny = loadable_tiny_flux(seed=37)
    kw = dict(steps=6, cfg=2.0, seed=5, negative_text_len=6)
    comfy_sampling.sample(calibrate(pack, tiny, "single.safetensors"), **kw)
    split = l2p_then_split(two_cpu_devices, lambda p: calibrate(pack, p, "split.safetensors"), tiny)
    comfy_sampling.sample(split, **kw)
    load = pack.module.predictors.load_predictor_file
    single, multi = (load(os.path.join(l2p_dir, f"{n}.safetensors")) for n in ("single", "split"))
    assert multi.roles == single.roles == ("cond", "uncond") and multi.sample_count == single.sample_count == 1
    assert np.array_equal(np.asarray(multi.gram), np.asarray(single.gram))


def test_a_failing_device_thread_leaves_no_state_behind(pack, two_cpu_devices, l2p_dir, comfy):
    tiny = loadable_tiny_flux(seed=38)
    kw = dict(steps=6, cfg=2.0, seed=6, negative_text_len=6)
    split = l2p_then_split(two_cpu_devices, lambda p: calibrate(pack, p, "failed.safetensors"), tiny)
    calls = []

    def fail_on_the_second_device(executor, *args, **kwargs):
        if args[-1].get("multigpu_thread_device") == TWO_DEVICES[1]:
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("device lost")
        return executor(*args, **kwargs)

    failing = split.clone()
    failing.add_wrapper_with_key(DM, "test.fail", fail_on_the_second_device)
    with pytest.raises(RuntimeError, match="device lost"):
        comfy_sampling.sample(failing, **kw)
    report = holder(failing).reports[-1]
    assert report.status.startswith("failed") and "l2p_run" not in failing.model_options["transformer_options"]
    assert not os.path.exists(os.path.join(l2p_dir, "failed.safetensors"))  # nothing of the run was recorded
    comfy_sampling.sample(split, **kw)  # the same MODEL runs clean afterwards and records exactly one trajectory
    pf = pack.module.predictors.load_predictor_file(os.path.join(l2p_dir, "failed.safetensors"))
    assert pf.sample_count == 1
