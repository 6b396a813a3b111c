"""A small, really trained FLUX-architecture reference model (pure torch, no ComfyUI needed), so forecasting
methods can be measured on trajectories of a trained model on a CPU.

    from reference import load_reference, euler_sample, flux_sigmas
    model = load_reference()
    cond, uncond = model.conditioning(torch.tensor([3, 7]))
    latents = euler_sample(model.model_fn, model.latent_noise(2, seed=0), flux_sigmas(50), cond, uncond, cfg_scale=3.0)
    images = model.codec.decode(latents)        # (2, 1, 64, 64) in about [-1, 1]

Train it again with `python3 scripts/train_reference.py`.

A second trained model of another architecture, ComfyUI's own Qwen-Image transformer at a small size (same data,
codec and recipe; needs a ComfyUI checkout in COMFYUI_PATH): `load_qwen_reference()` gives an object with the same
model_fn / conditioning / latent_noise / codec / diffusion_model. Train it with
`COMFYUI_PATH=/path/to/ComfyUI python3 scripts/train_reference_qwen.py`.
"""
from .conditioning import ClassConditioner, Conditioning
from .config import ConditionerConfig, FluxConfig, ReferenceConfig
from .flux import Flux
from .image_grid import save_grid
from .latent_codec import PatchPCACodec
from .model import ReferenceModel, load_reference, save_reference
from .qwen_config import QwenImageConfig, QwenReferenceConfig
from .qwen_model import QwenReferenceModel, load_qwen_reference
from .sampling import ModelFn, euler_sample, flux_sigmas, guided_velocity

__all__ = [
    "ClassConditioner", "Conditioning", "ConditionerConfig", "Flux", "FluxConfig", "ModelFn", "PatchPCACodec",
    "QwenImageConfig", "QwenReferenceConfig", "QwenReferenceModel", "ReferenceConfig", "ReferenceModel",
    "euler_sample", "flux_sigmas", "guided_velocity", "load_qwen_reference", "load_reference", "save_grid",
    "save_reference",
]
