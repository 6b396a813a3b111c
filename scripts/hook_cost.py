"""What each hook point costs per model call, inside real ComfyUI sampling (CPU, a few minutes).

    COMFYUI_PATH=/path/to/ComfyUI python3 scripts/hook_cost.py [--steps 50] [--repeats 5] [--sizes 8 32]

Two models: a tiny FLUX at the given latent sizes, and the same FLUX BaseModel with a null transformer in place of
its diffusion model (one identity block, run through ComfyUI's DIFFUSION_MODEL wrapper executor like ComfyUI's own
transformers), where a call costs little more than ComfyUI's machinery, so the hooks' own cost shows.

Every ``apply_model`` call is timed by an APPLY_MODEL wrapper of its own (outside L2P's, which runs innermost), in
CPU time of the sampling thread (other processes on a shared machine barely move it; sampling runs on one thread),
and marked computed when the transformer's first block ran. Variants: no L2P; Forecast Cache (FORA) at speedup 1 (every
step computed) and 5, installed at the APPLY_MODEL hook (the default) and at the DIFFUSION_MODEL hook. Printed per
latent size: the median milliseconds of a computed and of a forecast call, and a computed call's overhead over the
same call without L2P. A forecast call still runs ComfyUI's ``_apply_model`` around the skipped transformer (input
scaling, calculate_denoised), and under the DIFFUSION_MODEL hook also the transformer's forward up to the wrapper.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  (the pack as comfyui_l2p)
import comfy_host  # noqa: E402
import comfy_sampling  # noqa: E402
import pass_counter  # noqa: E402
import tiny_models  # noqa: E402

FORA = dict(method="FORA (reuse)", time_axis="step", placement="even", warmup_steps=2, compute_last_step=False,
            residual_budget=0.05, history_device="model device", spectrum_degree=4, spectrum_lambda=0.1,
            spectrum_blend=0.5)


class NullTransformer(torch.nn.Module):
    """A transformer that does nothing, called the way ComfyUI calls FLUX: forward runs the DIFFUSION_MODEL wrappers
    around _forward, whose one block returns its input."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([torch.nn.Identity()])
        self.dtype = torch.float32

    def forward(self, x, timestep, context, y=None, guidance=None, control=None, transformer_options={}, **kwargs):
        import comfy.patcher_extension as ext

        return ext.WrapperExecutor.new_class_executor(
            self._forward, self, ext.get_all_wrappers(ext.WrappersMP.DIFFUSION_MODEL, transformer_options),
        ).execute(x, timestep, context, y, guidance, control, transformer_options, **kwargs)

    def _forward(self, x, timestep, context, y=None, guidance=None, control=None, transformer_options={}, **kwargs):
        return self.blocks[0](x)


def timed(model, tiny, calls: list):
    """A clone of ``model`` whose apply_model calls append (seconds, computed) to ``calls``."""
    ran = []

    def timer(executor, *args, **kwargs):
        ran.clear()
        start = time.thread_time()
        out = executor(*args, **kwargs)
        calls.append((time.thread_time() - start, bool(ran)))
        return out

    handles = [module.register_forward_pre_hook(lambda *_: ran.append(True))
               for block in pass_counter.first_blocks(tiny.diffusion_model) for module in block.modules()]
    clone = model.clone()
    clone.add_wrapper_with_key("apply_model", "hook_cost.timer", timer)
    return clone, handles


def install(pack, tiny, hook: str | None, speedup: float):
    """``tiny`` with Forecast Cache (FORA) at ``hook`` (a HookPoint name), or unpatched for None."""
    if hook is None:
        return tiny.patcher
    nodes = pack.module.nodes
    holder = nodes.setups.forecast_cache_holder(
        method=FORA["method"], time_axis=FORA["time_axis"], speedup=speedup, placement=FORA["placement"],
        warmup=FORA["warmup_steps"], compute_last=False, residual_budget=0.05, history_device=FORA["history_device"],
        spectrum_degree=4, spectrum_lambda=0.1, spectrum_blend=0.5)
    return nodes.cache_nodes.install(tiny.patcher, holder, hooks=(nodes.hook_points.HookPoint[hook],))


VARIANTS = ((None, 1.0), ("APPLY_MODEL", 1.0), ("APPLY_MODEL", 5.0), ("DIFFUSION_MODEL", 1.0),
            ("DIFFUSION_MODEL", 5.0))


def measure(pack, tiny, size: int, steps: int, repeats: int) -> dict:
    """Per variant: every call's (seconds, computed). The variants take turns within each repeat, so a change in
    the machine's load spreads over all of them instead of biasing one."""
    models, handles, calls = {}, [], {}
    for variant in VARIANTS:
        calls[variant] = []
        models[variant], variant_handles = timed(install(pack, tiny, *variant), tiny, calls[variant])
        handles.extend(variant_handles)
    shape = (1, 16, size, size)
    try:
        for variant in VARIANTS:  # warm-up
            comfy_sampling.sample(models[variant], steps=steps, cfg=1.0, seed=0, latent_shape=shape)
            calls[variant].clear()
        for seed in range(repeats):
            for variant in VARIANTS:
                comfy_sampling.sample(models[variant], steps=steps, cfg=1.0, seed=seed, latent_shape=shape)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3 if times else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 32], help="latent height = width")
    args = p.parse_args(argv)
    pack = comfy_host.pack_for_script()
    if pack is None:
        return 2
    flux = tiny_models.tiny_flux(seed=0)
    null = tiny_models.tiny_flux(seed=0)
    null.patcher.model.diffusion_model = NullTransformer()
    print(f"{comfy_host.host_line()}; {args.steps} euler steps, cfg 1, {args.repeats} runs, medians of CPU time")
    print("| model | variant | computed / forecast calls per run | ms per computed call | ms per forecast call"
          " | computed-call overhead vs no L2P (us) |")
    print("|---|---|---|---|---|---|")
    cases = [(f"tiny FLUX {size}x{size}", flux, size) for size in args.sizes] + [("null transformer 8x8", null, 8)]
    for name, tiny, size in cases:
        calls = measure(pack, tiny, size, args.steps, args.repeats)
        base = median_ms([t for t, ran in calls[(None, 1.0)] if ran])
        for (hook, speedup), timings in calls.items():
            computed = [t for t, ran in timings if ran]
            forecast = [t for t, ran in timings if not ran]
            variant = "no L2P" if hook is None else f"{hook} hook, speedup {speedup:g}"
            fore = f"{median_ms(forecast):.3f}" if forecast else "-"
            overhead = "-" if hook is None else f"{(median_ms(computed) - base) * 1e3:+.0f}"
            print(f"| {name} | {variant} | {len(computed) // args.repeats} / {len(forecast) // args.repeats} |"
                  f" {median_ms(computed):.3f} | {fore} | {overhead} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
