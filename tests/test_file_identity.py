"""Model identities: what is read from a model, how two compare, the policy per difference, the metadata round trip.
(Inside real ComfyUI, with LoRA patches and configs: tests/test_comfy_files.py.)"""
import copy
import types

import numpy as np
import pytest
import torch

from comfyui_l2p.nodes.model_identity import check_file_identity, model_identity
from comfyui_l2p.predictors.files.identity import (
    POLICY, PRECISION_TOLERANCE, ModelIdentity, OtherModel, Use, Verdict, compare, identity_of,
)
from comfyui_l2p.predictors.files.predictor_file import PredictorFileError
from comfyui_l2p.predictors.files.storage import load_predictor_file, save_predictor_file

from file_cases import WEIGHTS, identity, run_file


class Block(torch.nn.Module):
    def __init__(self, width=24):
        super().__init__()
        self.attn = torch.nn.Linear(width, width)
        self.mlp = torch.nn.Linear(width, 2 * width)
        self.norm = torch.nn.LayerNorm(width)


class TinyDiT(torch.nn.Module):
    def __init__(self, blocks=12, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(blocks))
        self.out = torch.nn.Linear(24, 16)


def test_identity_of_a_module_is_stable_and_tells_weights_apart():
    dit = TinyDiT()
    one, two = model_identity(dit), model_identity(dit)
    assert one.model_class == "test_file_identity.TinyDiT" and one.config_name == "unknown"
    assert len(one.weights.values) == 8 and all(v.shape == (32,) for v in one.weights.values.values())
    assert compare(one, two).verdict is Verdict.SAME
    assert compare(one, model_identity(TinyDiT(seed=1))).verdict is Verdict.OTHER_WEIGHTS
    # the same weights stored as bfloat16 / fp8: rounding only
    for dtype in (torch.bfloat16, torch.float8_e4m3fn):
        cast = copy.deepcopy(dit).to(dtype)
        result = compare(one, model_identity(cast))
        assert result.verdict is Verdict.PRECISION, result.text()
        assert f"float32 -> {str(dtype).removeprefix('torch.')}" in result.detail


def test_the_picked_tensors_survive_a_host_that_adds_parameters():
    dit, grown = TinyDiT(), TinyDiT()
    grown.extra = torch.nn.Linear(24, 24)  # a newer host adds a module: most picks are kept, by their names
    a, b = model_identity(dit), model_identity(grown)
    assert len(set(a.weights.values) & set(b.weights.values)) >= 6
    assert compare(a, b).verdict is Verdict.SAME


def test_base_weights_are_read_where_comfyui_patched_them_in_place():
    dit = TinyDiT()
    before = model_identity(dit)
    name = sorted(before.weights.values)[0]
    param = dict(dit.named_parameters())[name]
    original = param.detach().clone()
    with torch.no_grad():
        param += 0.5  # a LoRA applied in place, ComfyUI keeping the original in its patcher's backup
    patcher = types.SimpleNamespace(backup={"diffusion_model." + name: types.SimpleNamespace(weight=original)},
                                    patches={"diffusion_model." + name: [(1.0, (torch.ones(3),), 1.0, None, None)]})
    patched = model_identity(dit, patcher)
    result = compare(before, patched)
    assert result.verdict is Verdict.OTHER_PATCHES and "1 key " in result.detail
    assert compare(before, model_identity(dit)).verdict is Verdict.OTHER_WEIGHTS  # read without the backup


def test_unreadable_weights_are_recorded_not_fatal():
    meta = TinyDiT().to("meta")
    ident = model_identity(meta)
    assert ident.weights is None and "not readable" in ident.weights_note
    assert compare(identity(), ident).verdict is Verdict.OTHER_CLASS  # the class still tells models apart
    same_class = ModelIdentity(ident.model_class)
    assert compare(model_identity(TinyDiT()), same_class).verdict is Verdict.WEIGHTS_UNREAD


@pytest.mark.parametrize("model, verdict", [
    (identity(), Verdict.SAME),
    (identity(config={"guidance_embed": True, "depth": 1, "new_key_of_a_newer_host": 3}), Verdict.SAME),
    (identity(config={"guidance_embed": False, "depth": 1}), Verdict.OTHER_CONFIG),
    (identity(config_name="FluxSchnell"), Verdict.OTHER_CONFIG),
    (identity(model_class="comfy.ldm.flux2.model.Flux2"), Verdict.OTHER_CLASS),
    (identity(weights={k: v * 1.5 for k, v in WEIGHTS.items()}), Verdict.OTHER_WEIGHTS),
    (identity(weights={k: v * 1.01 for k, v in WEIGHTS.items()}), Verdict.OTHER_WEIGHTS),  # same dtype: exact
    (identity(weights={k: v * 1.01 for k, v in WEIGHTS.items()}, dtype="float16"), Verdict.PRECISION),
    (identity(weights={k: v * (1 + 2 * PRECISION_TOLERANCE) for k, v in WEIGHTS.items()}, dtype="float16"),
     Verdict.OTHER_WEIGHTS),
    (identity(patches="3 keys 0011223344556677"), Verdict.OTHER_PATCHES),
])
def test_verdicts(model, verdict):
    assert compare(identity(), model).verdict is verdict
    assert compare(None, model).verdict is Verdict.NO_RECORD


def test_policy_covers_every_verdict_and_allows_only_loras_and_fine_tunes():
    assert set(POLICY) == set(Verdict)
    allowed = {v for v, rule in POLICY.items() if rule.use is Use.WHEN_ALLOWED}
    assert allowed == {Verdict.OTHER_PATCHES, Verdict.OTHER_WEIGHTS}
    assert {v for v, rule in POLICY.items() if rule.use is Use.NEVER} == {Verdict.OTHER_CONFIG, Verdict.OTHER_CLASS}


def test_metadata_round_trip_through_a_file(tmp_path):
    path = tmp_path / "id.safetensors"
    save_predictor_file(path, run_file(1, model=identity(patches="2 keys abcdef0123456789")))
    pf = load_predictor_file(path)
    back = identity_of(pf.extra, str(path))
    assert back.to_metadata() == identity(patches="2 keys abcdef0123456789").to_metadata()
    assert compare(back, identity(patches="2 keys abcdef0123456789")).verdict is Verdict.SAME
    assert all(v.dtype == np.float32 for v in back.weights.values.values())


def test_the_check_refuses_names_the_file_and_says_how_to_allow(tmp_path):
    pf = run_file(1)
    fine_tune = identity(weights={k: v + 0.01 for k, v in WEIGHTS.items()})
    with pytest.raises(PredictorFileError, match=r"'x.safetensors': calibrated on .*Flux.*other weights.*"
                                                 r"set other_model to 'allow LoRA / fine-tune'.*Do this"):
        check_file_identity("x.safetensors", pf, fine_tune, OtherModel.REFUSE, "Do this.")
    note = check_file_identity("x.safetensors", pf, fine_tune, OtherModel.ALLOW, "Do this.")
    assert "other weights" in note and "other_model allows it" in note
    with pytest.raises(PredictorFileError, match="another model class") as err:
        check_file_identity("x.safetensors", pf, identity(model_class="Other"), OtherModel.ALLOW, "Do this.")
    assert "other_model" not in str(err.value)  # no allowance to offer
    assert check_file_identity("x.safetensors", pf, identity(), OtherModel.REFUSE, "") is None
    broken = run_file(1)
    broken = type(broken)(**{**{f: getattr(broken, f) for f in ("steps", "model_family", "sigmas", "gram",
                                                                   "sample_count", "element_count")},
                             "extra": {"model_identity": "{not json"}})
    with pytest.raises(PredictorFileError, match="'x.safetensors'.*not a model identity"):
        check_file_identity("x.safetensors", broken, identity(), OtherModel.REFUSE, "")
