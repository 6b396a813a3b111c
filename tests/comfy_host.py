"""A real ComfyUI, in-process, for integration tests: bootstrap, tiny models, sampling, pass counting.

Everything here drives ComfyUI's own code from a checkout named by ``COMFYUI_PATH`` (nothing of ComfyUI is
copied into the project). The tiny models are ComfyUI's own classes (``comfy.supported_models`` config ->
``get_model`` -> ``ModelPatcher``, the path ``comfy/sd.py`` takes for a loaded state dict) with seeded random
weights: no files, no network, CPU, fp32. Sampling goes through ``nodes.common_ksampler`` (the KSampler node's
body) or ``comfy.sample.sample_custom`` (the SamplerCustom path), so CFG batching, cfg-1 uncond dropping,
wrappers and ``transformer_options`` are exactly what a user's graph gets.

Import order matters (see ``bootstrap``): ComfyUI's top-level module is called ``nodes``, like this pack's
``nodes/`` subpackage; tests import the pack as ``comfyui_l2p`` so ``import nodes`` must resolve to ComfyUI's.

Public API (all functions bootstrap on first use):
    comfyui_path() -> Path | None
    comfyui_version(path) -> str / host_line() -> str  (which host the tests run on)
    bootstrap() -> ComfyModules
    load_pack_in_comfyui(pack_dir=ROOT) -> LoadedPack
    tiny_flux(seed=0, **overrides) / tiny_qwen_image(...) / tiny_hunyuan_video(...) -> TinyModel
    flux_from_state_dict(state_dict, unet_config) -> TinyModel
    qwen_image_from_state_dict(state_dict, unet_config) -> TinyModel
    make_conditioning(model, *, seed, text_len, guidance=None) -> CONDITIONING list
    as_tiny(model_patcher_or_tiny) -> TinyModel
    sample(model, *, steps, cfg, seed, sampler_name="euler", scheduler="simple", batch=1, ...) -> latent Tensor
    scheduler_sigmas(model, *, steps, scheduler="simple") -> Tensor (steps + 1,)
    sample_sigmas(model, *, sigmas, cfg, seed, add_noise=True, ...) -> latent Tensor
    count_passes(model) -> context manager yielding PassCounter   (any model; scheduler_sigmas too)
    one_thread() -> context manager: torch on one thread while sampling tiny models
    record_diffusion_model_args(model) -> (clone, records)
    run_node(node_cls, **inputs) -> tuple of outputs
    ("model" = a TinyModel or a ModelPatcher of a FLUX / Qwen-Image / HunyuanVideo model; the other families'
    tiny models are in comfy_families.py)
"""
from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import enum
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

ROOT = Path(__file__).resolve().parents[1]
ENV_VAR = "COMFYUI_PATH"
SKIP_REASON = f"{ENV_VAR} is not set: real-ComfyUI tests skipped; set it to a ComfyUI checkout"


class ComfyHostError(RuntimeError):
    """The ComfyUI checkout cannot be used (wrong path, shadowed module, failed pack load)."""


# ----------------------------------------------------------------------------------------------- bootstrap


@dataclasses.dataclass(frozen=True)
class ComfyModules:
    """The ComfyUI modules the harness (and tests) use, imported in the order that works."""

    path: Path
    model_management: types.ModuleType
    sd: types.ModuleType
    samplers: types.ModuleType
    sample: types.ModuleType
    nodes: types.ModuleType
    folder_paths: types.ModuleType
    supported_models: types.ModuleType
    model_patcher: types.ModuleType
    patcher_extension: types.ModuleType


_MODULES: ComfyModules | None = None


def comfyui_path() -> Path | None:
    """The checkout named by ``COMFYUI_PATH``, or None when the variable is unset or empty."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser().resolve() if value else None


def comfyui_version(path: Path) -> str:
    """The version in the checkout's ``comfyui_version.py`` (read, not imported: the header is written before
    ComfyUI is bootstrapped), or "unknown" when it has none."""
    try:
        text = (path / "comfyui_version.py").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    match = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", text)
    return match.group(1) if match else "unknown"


def host_line() -> str:
    """Which host the real-ComfyUI tests run on, in one line (the pytest header and summary print it)."""
    path = comfyui_path()
    if path is None:
        return f"real-ComfyUI host: none ({ENV_VAR} is not set)"
    return f"real-ComfyUI host: ComfyUI {comfyui_version(path)} at {path}"


def bootstrap(device: str = "cpu") -> ComfyModules:
    """Import ComfyUI from ``COMFYUI_PATH`` once and return its modules. ``device`` "cpu" (the tests) or "cuda"
    (scripts/gpu_timing.py): ComfyUI picks its device once, so a second call asking for another one is refused.

    Order (each step guards a failure seen on a CPU-only machine):
    1. checkout first on sys.path, so ``nodes`` / ``utils`` / ``comfy`` are ComfyUI's;
    2. ``comfy.options`` with args parsing left off, so pytest's argv is never parsed;
    3. ``args.cpu = True`` (unless "cuda") before ``comfy.model_management`` is imported (it asserts CUDA otherwise);
    4. ``utils.extra_config`` before ``nodes`` (``nodes.py`` puts ``comfy/`` on sys.path, after which ``utils``
       would resolve to ``comfy/utils.py``).
    """
    global _MODULES
    if device not in ("cpu", "cuda"):
        raise ValueError(f"bootstrap: device must be 'cpu' or 'cuda', got {device!r}")
    if _MODULES is not None:
        running = _MODULES.model_management.get_torch_device().type
        if running != device:
            raise ComfyHostError(f"ComfyUI is already bootstrapped on {running}; cannot switch to {device} in one "
                                 f"process")
        return _MODULES
    path = comfyui_path()
    if path is None:
        raise ComfyHostError(SKIP_REASON)
    if not (path / "nodes.py").is_file() or not (path / "comfy" / "model_base.py").is_file():
        raise ComfyHostError(
            f"{ENV_VAR}={path} is not a ComfyUI checkout: expected nodes.py and comfy/model_base.py there. "
            f"Set {ENV_VAR} to the directory that holds ComfyUI's main.py."
        )
    for name in ("nodes", "comfy", "utils", "folder_paths"):
        module = sys.modules.get(name)
        if module is None:
            continue
        # `comfy` is a namespace package: no __file__, its location is its __path__
        origins = [getattr(module, "__file__", None)] + list(getattr(module, "__path__", []))
        origin = next((o for o in origins if o), "")
        if not origin or not Path(origin).resolve().is_relative_to(path):
            raise ComfyHostError(
                f"module '{name}' is already imported from {origin or module!r}, not from {path}: ComfyUI's "
                f"top-level '{name}' is shadowed. Import this pack as 'comfyui_l2p' (tests/conftest.py), never "
                f"as top-level 'nodes'."
            )
    if str(path) in sys.path:
        sys.path.remove(str(path))
    sys.path.insert(0, str(path))

    import comfy.options  # noqa: F401  (args parsing stays off: the default)
    import comfy.cli_args

    comfy.cli_args.args.cpu = device == "cpu"
    import utils.extra_config  # noqa: F401  (before `nodes`, see docstring)
    import comfy.model_management
    import comfy.sd
    import comfy.samplers
    import comfy.sample
    import comfy.supported_models
    import comfy.model_patcher
    import comfy.patcher_extension
    import comfy.utils
    import nodes
    import folder_paths

    # The KSampler path reads this global for its tqdm bar; tests want quiet logs, sampling is unaffected.
    comfy.utils.set_progress_bar_enabled(False)
    _predictor_folder_outside_checkout(folder_paths)
    if not Path(nodes.__file__).resolve().is_relative_to(path):
        raise ComfyHostError(f"'import nodes' resolved to {nodes.__file__}, expected ComfyUI's {path / 'nodes.py'}")
    _MODULES = ComfyModules(
        path=path,
        model_management=comfy.model_management,
        sd=comfy.sd,
        samplers=comfy.samplers,
        sample=comfy.sample,
        nodes=nodes,
        folder_paths=folder_paths,
        supported_models=comfy.supported_models,
        model_patcher=comfy.model_patcher,
        patcher_extension=comfy.patcher_extension,
    )
    return _MODULES


def _predictor_folder_outside_checkout(folder_paths) -> None:
    """The pack creates ``models/l2p/`` when it registers the folder; the harness never writes into the checkout,
    so that folder is a temporary one for this process (tests redirect it further with the ``l2p_dir`` fixture)."""
    if "l2p" in folder_paths.folder_names_and_paths:
        return
    folder = tempfile.mkdtemp(prefix="l2p-models-")
    atexit.register(shutil.rmtree, folder, True)
    folder_paths.folder_names_and_paths["l2p"] = ([folder], {".safetensors", ".txt"})


@dataclasses.dataclass(frozen=True)
class LoadedPack:
    """What ``nodes.load_custom_node`` registered for one pack."""

    module: types.ModuleType
    nodes: dict[str, type]  # node_id -> class, only the entries this load added or replaced
    display_names: dict[str, str]


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_LOADED_PACKS: dict[Path, LoadedPack] = {}


def load_pack_in_comfyui(pack_dir: str | os.PathLike = ROOT) -> LoadedPack:
    """Load a node pack exactly as ComfyUI's startup does and return what it registered.

    ComfyUI only logs a failed load; here it raises, with ComfyUI's own log lines, so a test shows why.
    """
    comfy = bootstrap()
    pack_dir = Path(pack_dir).resolve()
    if pack_dir in _LOADED_PACKS:  # ComfyUI loads a pack once per process; a second load registers nothing new
        return _LOADED_PACKS[pack_dir]
    if not (pack_dir / "__init__.py").is_file():
        raise ComfyHostError(f"{pack_dir} is not a node pack: expected {pack_dir / '__init__.py'}")
    nodes = comfy.nodes
    before = dict(nodes.NODE_CLASS_MAPPINGS)
    display_before = dict(nodes.NODE_DISPLAY_NAME_MAPPINGS)
    capture = _LogCapture()
    root_logger = logging.getLogger()
    root_logger.addHandler(capture)
    try:
        ok = asyncio.run(nodes.load_custom_node(str(pack_dir), module_parent="custom_nodes"))
    finally:
        root_logger.removeHandler(capture)
    if not ok:
        log = "\n".join(capture.messages) or "(ComfyUI logged nothing)"
        raise ComfyHostError(f"ComfyUI did not load the pack {pack_dir}. ComfyUI's log:\n{log}")
    sys_module_name = str(pack_dir).replace(".", "_x_")  # what load_custom_node registers (nodes.py:2118)
    added = {k: v for k, v in nodes.NODE_CLASS_MAPPINGS.items() if before.get(k) is not v}
    names = {k: v for k, v in nodes.NODE_DISPLAY_NAME_MAPPINGS.items() if display_before.get(k) != v or k in added}
    _LOADED_PACKS[pack_dir] = LoadedPack(module=sys.modules[sys_module_name], nodes=added, display_names=names)
    return _LOADED_PACKS[pack_dir]


def run_node(node_cls: type, **inputs: Any) -> tuple:
    """Execute one node (V1 class or V3 ``io.ComfyNode``) through ComfyUI's executor and return its outputs.

    Uses ``execution.get_output_data``, the function the prompt executor calls, so V3 nodes run on a sanitized
    class clone exactly as in a real graph. Each input is one value (no list inputs); returns one value per
    output slot.
    """
    bootstrap()
    import execution  # ComfyUI's executor, importable only after bootstrap
    from comfy_api.internal import _ComfyNodeInternal

    obj = node_cls if issubclass(node_cls, _ComfyNodeInternal) else node_cls()
    output, _ui, has_subgraph, pending = asyncio.run(
        execution.get_output_data("comfy_host", "1", obj, {k: [v] for k, v in inputs.items()})
    )
    if pending or has_subgraph:
        raise ComfyHostError(f"{node_cls.__name__} returned a pending task or a subgraph; run_node handles neither")
    return tuple(values[0] for values in output)


# ------------------------------------------------------------------------------------------- tiny models


class Family(enum.Enum):
    """Model families the harness builds; value = the ``comfy.supported_models`` class name."""

    FLUX = "Flux"
    QWEN_IMAGE = "QwenImage"
    HUNYUAN_VIDEO = "HunyuanVideo"


@dataclasses.dataclass(frozen=True)
class CondSpec:
    """Shapes of the conditioning a family's diffusion model reads (model_base.<Class>.extra_conds)."""

    context_dim: int  # last dim of the cross-attention context (B, L, context_dim)
    pooled_dim: int | None  # pooled_output (B, pooled_dim) -> `y`; None when the model takes no `y`
    guidance: float | None  # distilled guidance stored in the cond dict; None when the model has none


@dataclasses.dataclass(frozen=True)
class TinyModel:
    """A ComfyUI MODEL (``ModelPatcher``) plus what a test needs to sample it."""

    family: Family
    patcher: Any  # comfy.model_patcher.ModelPatcher
    unet_config: Mapping[str, Any]
    cond: CondSpec
    latent_channels: int
    latent_dims: int  # ComfyUI's latent_format.latent_dimensions: 2 -> (B, C, H, W), 3 -> (B, C, T, H, W)

    @property
    def diffusion_model(self) -> torch.nn.Module:
        return self.patcher.model.diffusion_model

    def latent_shape(self, batch: int, height: int = 8, width: int = 8, frames: int = 1) -> tuple[int, ...]:
        """The latent shape ComfyUI samples this model on (height/width in latent pixels).

        Qwen-Image (Wan21 latent format) is 3-D with T=1: ComfyUI unsqueezes a 4-D EmptyLatentImage to it.
        """
        if self.latent_dims == 3:
            return (batch, self.latent_channels, frames, height, width)
        return (batch, self.latent_channels, height, width)


FLUX_TINY: dict[str, Any] = {
    "image_model": "flux",
    "guidance_embed": True,  # FLUX.1-dev style: guidance distilled into the model
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "vec_in_dim": 8,
    "context_in_dim": 16,
    "hidden_size": 64,
    "mlp_ratio": 2.0,
    "num_heads": 2,
    "depth": 1,
    "depth_single_blocks": 1,
    "axes_dim": [8, 12, 12],  # sums to the head dim 64 / 2
    "theta": 10000,
    "qkv_bias": True,
}

QWEN_IMAGE_TINY: dict[str, Any] = {
    "image_model": "qwen_image",
    "patch_size": 2,
    "in_channels": 64,  # 16 latent channels x 2x2 patch
    "out_channels": 16,
    "num_layers": 1,
    "attention_head_dim": 32,
    "num_attention_heads": 2,
    "joint_attention_dim": 16,
    "axes_dims_rope": (8, 12, 12),  # sums to attention_head_dim
}

HUNYUAN_VIDEO_TINY: dict[str, Any] = {
    **FLUX_TINY,  # the same double/single-stream sizes; what differs:
    "image_model": "hunyuan_video",
    "patch_size": [1, 2, 2],
    "theta": 256,
    "byt5": False,
    "meanflow": False,
}

_TINY_CONFIGS = {Family.FLUX: FLUX_TINY, Family.QWEN_IMAGE: QWEN_IMAGE_TINY, Family.HUNYUAN_VIDEO: HUNYUAN_VIDEO_TINY}


def _cond_spec(family: Family, unet_config: Mapping[str, Any]) -> CondSpec:
    if family is Family.FLUX:
        # model_base.Flux: y = pooled_output, guidance defaults to 3.5 (None disables it)
        return CondSpec(unet_config["context_in_dim"], unet_config["vec_in_dim"],
                        3.5 if unet_config.get("guidance_embed") else None)
    if family is Family.QWEN_IMAGE:
        # model_base.QwenImage: only the context (no y, no guidance)
        return CondSpec(unet_config["joint_attention_dim"], None, None)
    # model_base.HunyuanVideo: y = pooled_output (when vector_in exists), guidance defaults to 6.0
    return CondSpec(unet_config["context_in_dim"], unet_config["vec_in_dim"],
                    6.0 if unet_config.get("guidance_embed") else None)


def _host_models():
    """reference/comfy_models.py: the host's unet_config fields and its state-dict processing. Imported when a model
    is built, so bootstrap alone needs nothing of the pack; tests/conftest.py makes the pack importable as
    comfyui_l2p, also where comfy_host runs outside pytest (a subprocess, scripts/)."""
    import conftest  # noqa: F401  (a no-op under pytest, which imported it first)
    from comfyui_l2p.reference import comfy_models

    return comfy_models


def host_unet_config(family: Family, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` completed for the host's class (fields a newer ComfyUI requires, switched off); ComfyHostError
    naming the host when it does not fit."""
    comfy_models = _host_models()
    image_model = config.get("image_model") or _TINY_CONFIGS[family]["image_model"]
    try:
        return comfy_models.host_unet_config(image_model, config)
    except comfy_models.HostModelError as error:
        raise ComfyHostError(str(error)) from error


def _load_like_host(model_config, module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    comfy_models = _host_models()
    try:
        comfy_models.load_state_dict_like_host(model_config, module, state_dict)
    except comfy_models.HostModelError as error:
        raise ComfyHostError(str(error)) from error
    module.float()


def _build(family: Family, unet_config: Mapping[str, Any], dtype: torch.dtype = torch.float32,
           device: torch.device | None = None) -> TinyModel:
    """config -> get_model -> ModelPatcher, as comfy/sd.py load_diffusion_model_state_dict does. The parameters
    are allocated on ``device`` (default: ComfyUI's offload device, the CPU here), uninitialised."""
    comfy = bootstrap()
    unet_config = host_unet_config(family, unet_config)
    config_cls = getattr(comfy.supported_models, family.value)
    if not config_cls.matches(dict(unet_config)):
        raise ComfyHostError(
            f"unet_config does not match supported_models.{family.value}: it needs {config_cls.unet_config}, "
            f"found {dict(unet_config)}"
        )
    model_config = config_cls(dict(unet_config))
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, "", device=device)
    if device is None:
        model = model.to(comfy.model_management.unet_offload_device())
    patcher = comfy.model_patcher.ModelPatcher(
        model,
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )
    return as_tiny(patcher)


def as_tiny(model: Any) -> TinyModel:
    """``model`` as a TinyModel: a TinyModel is returned as is; a ModelPatcher of a FLUX / Qwen-Image /
    HunyuanVideo model (e.g. the clone a node returned) is described from its model_base class and unet_config."""
    if isinstance(model, TinyModel):
        return model
    base = getattr(model, "model", None)
    families = {f.value: f for f in Family}
    family = families.get(type(base).__name__)
    if family is None:
        raise ComfyHostError(
            f"expected a TinyModel or a ModelPatcher of {sorted(families)}, found {type(model).__name__} "
            f"wrapping {type(base).__name__}"
        )
    unet_config = {k: v for k, v in base.model_config.unet_config.items() if k != "dtype"}
    latent_format = base.latent_format
    return TinyModel(
        family=family,
        patcher=model,
        unet_config=types.MappingProxyType(unet_config),
        cond=_cond_spec(family, unet_config),
        latent_channels=latent_format.latent_channels,
        latent_dims=latent_format.latent_dimensions,
    )


_NORM_TYPES = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.RMSNorm)


@torch.no_grad()
def init_weights(module: torch.nn.Module, seed: int, bias_std: float = 0.1) -> None:
    """Seeded random init that keeps activations O(1) and no output identically zero.

    ComfyUI's ops skip weight init (``disable_weight_init``: parameters hold whatever memory they got), and real
    checkpoints zero-init nothing we can rely on, so every parameter is set here, in ``named_parameters`` order
    from one generator: matrices/kernels ~ N(0, 1/fan_in) (unit-variance outputs for unit-variance inputs),
    norm gains (norm modules' weights and QK-norm ``scale``) = 1, other vectors (biases) ~ N(0, bias_std^2).
    In particular the final layers (adaLN modulation and output projection) are random, not zero.
    """
    device = next(module.parameters()).device  # drawn where the parameters live: a 12B model is not drawn on a CPU
    gen = torch.Generator(device=device).manual_seed(seed)
    owners = {name: mod for name, mod in module.named_modules()}
    for name, param in module.named_parameters():
        owner = owners[name.rpartition(".")[0]] if "." in name else module
        leaf = name.rpartition(".")[2]
        if param.ndim >= 2:
            fan_in = math.prod(param.shape[1:])
            value = torch.randn(param.shape, generator=gen, device=device) / math.sqrt(fan_in)
        elif leaf == "scale" or (isinstance(owner, _NORM_TYPES) and leaf == "weight") or "Norm" in type(owner).__name__:
            value = torch.ones(param.shape, device=device) if leaf != "bias" else torch.zeros(param.shape, device=device)
        else:
            value = torch.randn(param.shape, generator=gen, device=device) * bias_std
        param.copy_(value.to(param.dtype))


def tiny_model(family: Family, seed: int = 0, *, dtype: torch.dtype = torch.float32,
               device: torch.device | None = None, **overrides: Any) -> TinyModel:
    """A tiny ``family`` model, random weights from ``seed``; ``overrides`` replace unet_config entries (so any
    size: scripts/gpu_timing.py builds FLUX.1-dev's this way). ``dtype`` / ``device``: the parameters' (default
    float32 on ComfyUI's offload device, the CPU)."""
    unet_config = {**_TINY_CONFIGS[family], **overrides}
    tiny = _build(family, unet_config, dtype, device)
    init_weights(tiny.diffusion_model, seed)
    return tiny


def model_skeleton(family: Family, *, dtype: torch.dtype, device: torch.device, **overrides: Any) -> TinyModel:
    """``tiny_model``'s model without its weights drawn: on the meta device, a full-size model's shape for free."""
    return _build(family, {**_TINY_CONFIGS[family], **overrides}, dtype, device)


def tiny_flux(seed: int = 0, **overrides: Any) -> TinyModel:
    """Tiny guidance-distilled FLUX (supported_models.Flux); 4-D latents (B, 16, H, W)."""
    return tiny_model(Family.FLUX, seed, **overrides)


def tiny_qwen_image(seed: int = 0, **overrides: Any) -> TinyModel:
    """Tiny Qwen-Image (supported_models.QwenImage); ComfyUI samples it on 5-D latents (B, 16, 1, H, W)."""
    return tiny_model(Family.QWEN_IMAGE, seed, **overrides)


def tiny_hunyuan_video(seed: int = 0, **overrides: Any) -> TinyModel:
    """Tiny HunyuanVideo (supported_models.HunyuanVideo); 5-D video latents (B, 16, T, H, W)."""
    return tiny_model(Family.HUNYUAN_VIDEO, seed, **overrides)


def flux_from_state_dict(state_dict: Mapping[str, torch.Tensor], unet_config: Mapping[str, Any]) -> TinyModel:
    """A FLUX ModelPatcher whose ``comfy.ldm.flux.model.Flux`` holds ``state_dict``.

    ``unet_config``: the FLUX.1 sizes (FluxParams as ComfyUI 0.3.64 has them) plus ``image_model: "flux"``; fields a
    newer host requires are completed (``host_unet_config``). ComfyUI picks the config class from it as
    ``model_detection.model_config_from_unet_config`` does (guidance_embed True -> Flux, False -> FluxSchnell,
    which samples with shift 1). The state dict goes through that config's ``process_unet_state_dict``, as ComfyUI
    loads a checkpoint (so FLUX's QK-norm ``.scale`` keys load into a host whose norm is RMSNorm ``.weight``);
    keys as the module names them or with a checkpoint's ``model.diffusion_model.`` / ``diffusion_model.`` prefix.
    Loading is strict: ComfyUI itself only logs missing keys, a test must not.
    """
    comfy = bootstrap()
    complete = host_unet_config(Family.FLUX, unet_config)
    comfy_models = _host_models()
    try:
        model_config = comfy_models.host_model_config(complete)
    except comfy_models.HostModelError as error:
        raise ComfyHostError(str(error)) from error
    model = model_config.get_model({}, "").to(comfy.model_management.unet_offload_device())
    _load_like_host(model_config, model.diffusion_model, state_dict)
    patcher = comfy.model_patcher.ModelPatcher(
        model,
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )
    return as_tiny(patcher)


def qwen_image_from_state_dict(state_dict: Mapping[str, torch.Tensor], unet_config: Mapping[str, Any]) -> TinyModel:
    """A Qwen-Image ModelPatcher (supported_models.QwenImage) whose transformer holds ``state_dict``, loaded
    strictly through the config's ``process_unet_state_dict`` like ``flux_from_state_dict``.

    ``unet_config``: QwenImageTransformer2DModel's keyword arguments plus ``image_model: "qwen_image"``.
    """
    tiny = _build(Family.QWEN_IMAGE, unet_config)
    _load_like_host(tiny.patcher.model.model_config, tiny.diffusion_model, state_dict)
    return tiny


# ------------------------------------------------------------------------------------------------ sampling


def make_conditioning(model: Any, *, seed: int, text_len: int = 4, guidance: float | None = None) -> list:
    """A CONDITIONING list ``[[context (1, text_len, D), {extras}]]`` like a text encoder node returns.

    FLUX / HunyuanVideo get ``pooled_output`` (1, vec_in_dim) and ``guidance`` (the model default unless given);
    Qwen-Image gets the context only. ComfyUI repeats batch-1 conds to the latent batch.
    """
    tiny = as_tiny(model)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    context = torch.randn((1, text_len, tiny.cond.context_dim), generator=gen)
    extras: dict[str, Any] = {}
    if tiny.cond.pooled_dim is not None:
        extras["pooled_output"] = torch.randn((1, tiny.cond.pooled_dim), generator=gen)
    if tiny.cond.guidance is not None:
        extras["guidance"] = tiny.cond.guidance if guidance is None else guidance
    return [[context, extras]]


def _latent(tiny: TinyModel, latent_shape: tuple[int, ...] | None, batch: int, latent: torch.Tensor | None):
    if latent is not None:
        return latent
    shape = latent_shape if latent_shape is not None else tiny.latent_shape(batch)
    if shape[0] != batch:
        raise ValueError(f"latent_shape {shape} has batch {shape[0]}, expected batch={batch}")
    return torch.zeros(shape)


def _conds(tiny: TinyModel, seed: int, positive, negative, text_len: int, negative_text_len: int | None):
    if positive is None:
        positive = make_conditioning(tiny, seed=seed + 1, text_len=text_len)
    if negative is None:
        negative = make_conditioning(tiny, seed=seed + 2, text_len=negative_text_len or text_len)
    return positive, negative


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine the thread pool's spinning
    made a 4-step run up to 50x slower; restore the caller's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sample(
    model: Any,
    *,
    steps: int,
    cfg: float,
    seed: int,
    sampler_name: str = "euler",
    scheduler: str = "simple",
    batch: int = 1,
    latent_shape: tuple[int, ...] | None = None,
    latent: torch.Tensor | None = None,
    positive: list | None = None,
    negative: list | None = None,
    text_len: int = 4,
    negative_text_len: int | None = None,
    denoise: float = 1.0,
) -> torch.Tensor:
    """Run the KSampler node's body (``nodes.common_ksampler``) on ``model`` and return the output latent.

    ``model``: a TinyModel or a ModelPatcher of one (e.g. the patched clone a node returned). ``latent`` is the
    input LATENT samples (needed for denoise < 1 to mean anything; default zeros of ``latent_shape``, else
    ``latent_shape(batch)``). Conds default to seeded random ones from ``make_conditioning`` (positive from
    ``seed + 1``, negative from ``seed + 2``): the negative gets ``negative_text_len`` tokens (default the
    positive's), and a different length stops ComfyUI from batching cond with uncond (two diffusion-model calls
    per step). Returns the latent as the sampler leaves it: 5-D for Qwen-Image / HunyuanVideo, 4-D for FLUX.
    """
    comfy = bootstrap()
    tiny = as_tiny(model)
    positive, negative = _conds(tiny, seed, positive, negative, text_len, negative_text_len)
    samples = _latent(tiny, latent_shape, batch, latent)
    with one_thread():
        (out,) = comfy.nodes.common_ksampler(
            tiny.patcher, seed, steps, cfg, sampler_name, scheduler, positive, negative, {"samples": samples},
            denoise=denoise,
        )
    return out["samples"]


def scheduler_sigmas(model: Any, *, steps: int, scheduler: str = "simple") -> torch.Tensor:
    """The BasicScheduler sigmas, float32 (steps + 1,) ending in 0, for ``model``'s model_sampling."""
    comfy = bootstrap()
    model_sampling = _patcher_of(model).get_model_object("model_sampling")
    return comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps).cpu()


def sample_sigmas(
    model: Any,
    *,
    sigmas: torch.Tensor,
    cfg: float,
    seed: int,
    sampler_name: str = "euler",
    add_noise: bool = True,
    batch: int = 1,
    latent_shape: tuple[int, ...] | None = None,
    latent: torch.Tensor | None = None,
    positive: list | None = None,
    negative: list | None = None,
    text_len: int = 4,
    negative_text_len: int | None = None,
) -> torch.Tensor:
    """Custom sampling on an explicit ``sigmas`` schedule (the SamplerCustom node's path).

    ``comfy.samplers.ksampler(sampler_name)`` -> ``comfy.sample.sample_custom``; other arguments as ``sample``.
    For a two-pass graph, sample ``sigmas[:k+1]``, then feed the result as ``latent`` with ``sigmas[k:]`` and
    ``add_noise=False`` (flow models' noise_scaling / inverse_noise_scaling make the hand-over exact).
    """
    comfy = bootstrap()
    tiny = as_tiny(model)
    positive, negative = _conds(tiny, seed, positive, negative, text_len, negative_text_len)
    samples = comfy.sample.fix_empty_latent_channels(tiny.patcher, _latent(tiny, latent_shape, batch, latent))
    if add_noise:
        noise = comfy.sample.prepare_noise(samples, seed)
    else:
        noise = torch.zeros(samples.shape, dtype=samples.dtype)
    sampler = comfy.samplers.ksampler(sampler_name)
    with one_thread():
        return comfy.sample.sample_custom(
            tiny.patcher, noise, cfg, sampler, sigmas, positive, negative, samples, disable_pbar=True, seed=seed,
        )


# ---------------------------------------------------------------------------------------------- counting


@dataclasses.dataclass(frozen=True)
class DiffusionCall:
    """One call of the diffusion model's outer ``forward`` (the thing DIFFUSION_MODEL wrappers wrap)."""

    rows: int  # x.shape[0]: batch rows in this call (cond and uncond chunks concatenated)
    cond_or_uncond: tuple[int, ...]  # transformer_options["cond_or_uncond"]: 0 = cond, 1 = uncond, per chunk
    sigma: float  # transformer_options["sigmas"][0]
    computed: bool  # True when the transformer really ran (its first block was entered)


@dataclasses.dataclass
class PassCounter:
    """Calls of a diffusion model during a ``count_passes`` block.

    ``dm_calls`` counts outer forward calls (one per chunk ComfyUI sends: 1 per step when cond+uncond batch, 2
    when they cannot); ``forwards`` counts the calls where the transformer's first block ran (a DIFFUSION_MODEL
    wrapper that returns without calling its executor is a ``dm_call`` but not a ``forward``); ``forward_rows``
    sums the batch rows of those real passes.
    """

    calls: list[DiffusionCall] = dataclasses.field(default_factory=list)
    _block_entered: bool = False

    @property
    def dm_calls(self) -> int:
        return len(self.calls)

    @property
    def forwards(self) -> int:
        return sum(c.computed for c in self.calls)

    @property
    def forward_rows(self) -> int:
        return sum(c.rows for c in self.calls if c.computed)

    def reset(self) -> None:
        self.calls.clear()


def first_blocks(diffusion_model: torch.nn.Module) -> list[torch.nn.Module]:
    """The first block of every block list the transformer owns (double_blocks / single_blocks for FLUX,
    transformer_blocks for Qwen-Image, blocks for Wan, layers and refiners for Lumina, input_blocks for a UNet, ...):
    one of them runs in every real pass, none when a wrapper answers without calling the transformer."""
    blocks = [child[0] for child in diffusion_model.children()
              if isinstance(child, torch.nn.ModuleList) and len(child) > 0]
    if not blocks:
        raise ComfyHostError(f"{type(diffusion_model).__name__} has no block list (nn.ModuleList) to count passes by")
    return blocks


def _patcher_of(model: Any) -> Any:
    """The ModelPatcher of a TinyModel, of another tiny model holding one (``comfy_families.FamilyModel``), or
    ``model`` itself."""
    return model.patcher if hasattr(model, "patcher") else model


@contextlib.contextmanager
def count_passes(model: Any) -> Iterator[PassCounter]:
    """Count diffusion-model calls and real transformer passes of ``model`` (a ModelPatcher, a TinyModel or
    anything holding its ``patcher``).

    Hooks sit on the shared ``nn.Module``, so clones of the patcher are counted too; they are removed on exit.
    """
    dm = _patcher_of(model).model.diffusion_model
    counter = PassCounter()

    def outer_pre_hook(module, args, kwargs):
        x = args[0] if args else kwargs["x"]
        options = kwargs.get("transformer_options", {})
        sigmas = options.get("sigmas")
        counter.calls.append(DiffusionCall(
            rows=int(x.shape[0]),
            cond_or_uncond=tuple(options.get("cond_or_uncond", ())),
            sigma=float(sigmas[0]) if sigmas is not None else float("nan"),
            computed=False,
        ))
        counter._block_entered = False

    def outer_post_hook(module, args, kwargs, output):
        if counter.calls and counter._block_entered:
            counter.calls[-1] = dataclasses.replace(counter.calls[-1], computed=True)
        counter._block_entered = False

    def block_pre_hook(module, args):
        counter._block_entered = True

    handles = [
        dm.register_forward_pre_hook(outer_pre_hook, with_kwargs=True),
        dm.register_forward_hook(outer_post_hook, with_kwargs=True),
        # every module of those blocks: a UNet runs its TimestepEmbedSequential's layers one by one, never the block
        *(module.register_forward_pre_hook(block_pre_hook)
          for block in first_blocks(dm) for module in block.modules()),
    ]
    try:
        yield counter
    finally:
        for handle in handles:
            handle.remove()


def record_diffusion_model_args(model: Any) -> tuple[Any, list[tuple[tuple, dict]]]:
    """A clone of ``model`` with a DIFFUSION_MODEL wrapper that records (args, kwargs) of every call.

    Returns (clone, records); the wrapper calls its executor, so sampling is unchanged.
    """
    comfy = bootstrap()
    patcher = as_tiny(model).patcher
    records: list[tuple[tuple, dict]] = []

    def wrapper(executor: Callable, *args, **kwargs):
        records.append((args, kwargs))
        return executor(*args, **kwargs)

    clone = patcher.clone()
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "comfy_host.record", wrapper)
    return clone, records
