"""How a model's calls are laid out, without ComfyUI: where a call's transformer_options sit (found by what they hold,
whatever the family's argument order) and list outputs (LTX-2's [video, audio]) flattened per row, restored exactly
and forecast part by part. The same run inside real ComfyUI sampling in test_comfy_hooks.py."""
import uuid

import torch

from comfyui_l2p.nodes.latent_lists import batch_rows, flatten_parts
from comfyui_l2p.nodes.plans import FixedPlan
from comfyui_l2p.nodes.report import RunReport
from comfyui_l2p.nodes.run_state import RUN_KEY, RunPieces, RunState, run_options
from comfyui_l2p.predictors import StepGrid, TaylorSeer, TimeAxis


# ------------------------------------------------------------------------------ where transformer_options is


def test_the_runs_options_are_found_by_what_they_hold_wherever_they_sit():
    to, other = {"sigmas": 1, RUN_KEY: "run"}, {"not": "it"}
    # LTXV's order: transformer_options sixth of seven positional arguments, a dict-like keyframe argument after it
    assert run_options((torch.zeros(1), torch.zeros(1), torch.zeros(1), None, 25, to, other), {}) is to
    assert run_options((1, 2, 3, 4, 5, 6, 7, to), {}) is to  # Flux's _forward: last
    assert run_options((1, 2), {"transformer_options": to, "control": other}) is to  # _apply_model: a keyword
    assert run_options((1, {"sigmas": 1}), {"transformer_options": {"sigmas": 1}}) is None  # no L2P run in it


# ------------------------------------------------------------------------------------- list outputs


def test_list_outputs_flatten_per_row_and_restore_exactly():
    video, audio = torch.randn(2, 3, 2, 4, 4), torch.randn(2, 8, 5, 16, dtype=torch.float64)
    flat, layout = flatten_parts([video, audio])
    assert flat.shape == (2, 3 * 2 * 4 * 4 + 8 * 5 * 16) and flat.dtype == torch.float64
    back = layout.restore(flat)
    assert isinstance(back, list) and back[0].dtype == torch.float32 and back[1].dtype == torch.float64
    assert torch.equal(back[0], video) and torch.equal(back[1], audio)
    assert layout.restore(flat[1:])[1].shape == (1, 8, 5, 16)  # one chunk of the batch restores too
    assert flatten_parts(video) == (video, None)
    assert flatten_parts({"not": "a tensor"}) == (None, None)
    assert batch_rows([video, audio]) == 2 and batch_rows(video) == 2 and batch_rows("text") is None
    assert batch_rows([video, audio[:1]]) is None  # parts that disagree on the batch are not a list latent


def list_model(x, to):
    """A multi-latent 'transformer': [video, audio] outputs, each linear in sigma with its own slope per element."""
    sigma = to["sigmas"].reshape(-1)[0]
    video, audio = x
    return [video * 0 + sigma * torch.arange(video[0].numel()).view(video.shape[1:]),
            audio * 0 - 2 * sigma * torch.ones(audio.shape[1:])]


def test_list_outputs_are_forecast_part_by_part_from_their_own_history():
    grid = StepGrid.uniform(8)
    pieces = RunPieces(TaylorSeer(order=1, axis=TimeAxis.SIGMA), FixedPlan(frozenset({0, 1, 5}), 1))
    run = RunState(pieces, grid, RunReport("test", "taylorseer", grid.num_steps))
    calls = []
    u = uuid.uuid4()
    for s in range(8):
        to = {"sigmas": torch.tensor([grid.sigmas[s]]), "uuids": [u], "cond_or_uncond": [0]}
        x = [torch.zeros(1, 2, 1, 2, 2), torch.zeros(1, 8, 3, 4)]
        out = run(lambda *a, **k: calls.append(s) or list_model(*a, **k), (x, to), {}, to)
        expected = list_model(x, to)
        assert isinstance(out, list) and len(out) == 2
        for got, want in zip(out, expected):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)  # TaylorSeer-1 is exact on linear outputs
    assert calls == [0, 1, 5] and run.report.forecast_calls == 5
