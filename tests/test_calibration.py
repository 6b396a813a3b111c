"""Calibration statistics: G accumulated in any pieces equals G of the whole; merging, roles, file arrays, refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from comfyui_l2p.predictors.calibration.gram import GramStats, empty_stats
from comfyui_l2p.predictors.calibration.inner_products import cross_gram, gram_from_pieces
from comfyui_l2p.predictors.calibration.recorder import TrajectoryRecorder
from comfyui_l2p.predictors.engine.grid import StepGrid

from predictor_cases import shifted_grid

GRID = shifted_grid(7)
S = GRID.num_steps
ROLES = ("cond", "uncond")
EXACT = 1e-12  # float64 accumulation of float64 data: only summation order differs


def trajectories(n: int, seed: int, shape=(3, 4, 5), roles=ROLES, dtype=torch.float64) -> dict[str, torch.Tensor]:
    """role -> [n, S, *shape] random outputs, cond and uncond correlated like real CFG streams."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn((n, S) + shape, generator=gen, dtype=torch.float64)
    out = {}
    for k, role in enumerate(roles):
        out[role] = (base + 0.3 * k * torch.randn(base.shape, generator=gen, dtype=torch.float64)).to(dtype)
    return out


def whole_gram(traj: dict[str, torch.Tensor], roles=ROLES) -> np.ndarray:
    """Brute force: flatten each (role, step) over samples and elements, G = X X^T with rows r*S + s."""
    rows = [traj[r][:, s].reshape(-1) for r in roles for s in range(S)]
    x = torch.stack(rows).to(torch.float64).numpy()
    return x @ x.T


def record_run(traj, rows=slice(None), roles=ROLES, **kwargs) -> GramStats:
    rec = TrajectoryRecorder(GRID, roles, compute_dtype=torch.float64, **kwargs)
    for s in range(S):
        rec.record(s, {r: traj[r][rows, s] for r in roles})
    return rec.finish()


def assert_gram_close(a: np.ndarray, b: np.ndarray, rtol: float = EXACT) -> None:
    scale = np.max(np.abs(b))
    assert np.max(np.abs(a - b)) <= rtol * scale, np.max(np.abs(a - b)) / scale


# ---------------------------------------------------------------------------------------------- pieces
def test_recorder_equals_gram_of_the_whole():
    traj = trajectories(4, seed=0)
    stats = record_run(traj)
    assert_gram_close(stats.gram, whole_gram(traj))
    assert stats.sample_count == 4
    assert stats.element_count == 4 * 3 * 4 * 5
    assert stats.roles == ROLES and stats.grid == GRID


@pytest.mark.parametrize("chunk", [1, 7, 60, 10_000])
def test_element_chunks_give_the_gram_of_the_whole(chunk):
    traj = trajectories(3, seed=1)
    whole = whole_gram(traj)
    # rows r*S + s, elements = (sample, *shape) flattened
    x = torch.stack([traj[r][:, s].reshape(-1) for r in ROLES for s in range(S)])  # [R*S, N*D]
    cuts = [0, 5, 6, 31, 100, x.shape[1]]
    pieces = [x[:, a:b] for a, b in zip(cuts, cuts[1:])]
    assert_gram_close(gram_from_pieces(pieces, chunk_elements=chunk, compute_dtype=torch.float64), whole)
    # and the recorder's own chunking
    assert_gram_close(record_run(traj, chunk_elements=chunk).gram, whole)


def test_batch_rows_and_separate_runs_merge_to_the_whole():
    traj = trajectories(5, seed=2)
    one = record_run(traj)
    per_row = [record_run(traj, rows=slice(n, n + 1)) for n in range(5)]
    merged = per_row[0]
    for part in per_row[1:]:
        merged = merged + part
    assert_gram_close(merged.gram, one.gram)
    assert (merged.sample_count, merged.element_count) == (one.sample_count, one.element_count)
    split = record_run(traj, rows=slice(0, 2)).merge(record_run(traj, rows=slice(2, 5)))
    assert_gram_close(split.gram, one.gram)
    assert_gram_close((empty_stats(GRID, ROLES) + one).gram, one.gram)


def test_float32_blocks_accumulate_to_float32_accuracy():
    traj = trajectories(2, seed=3, shape=(40, 50), dtype=torch.float32)
    whole = whole_gram(traj)
    rec = TrajectoryRecorder(GRID, ROLES, compute_dtype=torch.float32, chunk_elements=512)
    for s in range(S):
        rec.record(s, {r: traj[r][:, s] for r in ROLES})
    assert_gram_close(rec.finish().gram, whole, rtol=1e-5)


def test_bfloat16_outputs_are_stored_without_upcasting_and_offload_matches():
    traj = trajectories(2, seed=4, dtype=torch.bfloat16)
    exact = whole_gram(traj)  # of the bf16 values themselves
    for offload in (False, True):
        rec = TrajectoryRecorder(GRID, ROLES, offload=offload, compute_dtype=torch.float64)
        rec.record(0, {r: traj[r][:, 0] for r in ROLES})
        assert rec._state.buffer.dtype == torch.bfloat16
        for s in range(1, S):
            rec.record(s, {r: traj[r][:, s] for r in ROLES})
        assert_gram_close(rec.finish().gram, exact)


def test_cross_gram_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="same E"):
        cross_gram(torch.zeros(2, 3), torch.zeros(2, 4))


# ---------------------------------------------------------------------------------------------- derived Grams
def test_role_and_combined_grams_equal_brute_force():
    traj = trajectories(3, seed=5)
    stats = GramStats.from_trajectories(traj, GRID)
    assert_gram_close(stats.role_gram("uncond"), whole_gram({"uncond": traj["uncond"]}, roles=("uncond",)))
    g = 4.5
    guided = {"cond": traj["uncond"] + g * (traj["cond"] - traj["uncond"])}
    assert_gram_close(stats.combined_gram({"cond": g, "uncond": 1.0 - g}), whole_gram(guided, roles=("cond",)))
    with pytest.raises(KeyError, match="recorded roles"):
        stats.role_gram("negative")


def test_from_trajectories_matches_the_recorder():
    traj = trajectories(3, seed=6)
    assert_gram_close(GramStats.from_trajectories(traj, GRID).gram, record_run(traj).gram)


# ---------------------------------------------------------------------------------------------- refusals
def test_abandoned_run_adds_nothing_and_the_recorder_is_single_use():
    traj = trajectories(2, seed=7)
    rec = TrajectoryRecorder(GRID, ROLES)
    rec.record(0, {r: traj[r][:, 0] for r in ROLES})
    rec.abandon()
    assert rec._state is None
    with pytest.raises(RuntimeError, match="one per run"):
        rec.record(1, {r: traj[r][:, 1] for r in ROLES})
    with pytest.raises(RuntimeError, match="one per run"):
        rec.finish()


def test_run_with_a_missing_step_is_refused():
    traj = trajectories(2, seed=8)
    rec = TrajectoryRecorder(GRID, ROLES)
    for s in range(S):
        if s != 3:
            rec.record(s, {r: traj[r][:, s] for r in ROLES})
    with pytest.raises(ValueError, match=r"skipped steps \[3\]"):
        rec.finish()
    with pytest.raises(ValueError, match="nothing was recorded"):
        TrajectoryRecorder(GRID, ROLES).finish()


def test_record_refuses_bad_input():
    traj = trajectories(2, seed=9)
    rec = TrajectoryRecorder(GRID, ROLES)
    with pytest.raises(ValueError, match="expected outputs for roles"):
        rec.record(0, {"cond": traj["cond"][:, 0]})
    with pytest.raises(ValueError, match="same shape"):
        rec.record(0, {"cond": traj["cond"][:, 0], "uncond": traj["uncond"][:1, 0]})
    with pytest.raises(ValueError, match="outside"):
        rec.record(S, {r: traj[r][:, 0] for r in ROLES})
    rec.record(2, {r: traj[r][:, 2] for r in ROLES})
    with pytest.raises(ValueError, match="must increase"):
        rec.record(2, {r: traj[r][:, 2] for r in ROLES})
    with pytest.raises(ValueError, match="layout changed"):
        rec.record(3, {r: traj[r][:1, 3] for r in ROLES})


def test_merge_refuses_other_setups():
    stats = GramStats.from_trajectories(trajectories(2, seed=10), GRID)
    with pytest.raises(ValueError, match="stream roles"):
        stats + GramStats.from_trajectories({"cond": trajectories(2, seed=10)["cond"]}, GRID)
    other_grid = shifted_grid(7, shift=1.0)
    with pytest.raises(ValueError, match="sigma grids"):
        stats + GramStats(stats.gram, 2, 120, other_grid, ROLES)
    with pytest.raises(ValueError, match="step counts"):
        stats + empty_stats(shifted_grid(8), ROLES)


def test_stats_validation():
    size = 2 * S
    with pytest.raises(ValueError, match=r"\[R\*S, R\*S\]"):
        GramStats(np.eye(S), 1, 1, GRID, ROLES)
    asym = np.eye(size)
    asym[0, 1] = 1.0
    with pytest.raises(ValueError, match="symmetric"):
        GramStats(asym, 1, 1, GRID, ROLES)
    with pytest.raises(ValueError, match="distinct"):
        GramStats(np.eye(size), 1, 1, GRID, ("cond", "cond"))
    with pytest.raises(ValueError, match="role names"):
        GramStats(np.eye(size), 1, 1, GRID, ("cond", "un,cond"))
    with pytest.raises(ValueError, match="non-negative integer"):
        GramStats(np.eye(size), -1, 1, GRID, ROLES)


# ---------------------------------------------------------------------------------------------- file arrays
def test_arrays_round_trip():
    stats = GramStats.from_trajectories(trajectories(3, seed=11), GRID)
    arrays, meta = stats.to_arrays()
    assert arrays["gram"].dtype == np.float64 and arrays["gram"].shape == (2 * S, 2 * S)
    assert arrays["sample_count"].dtype == np.int64 and arrays["sample_count"].tolist() == [3]
    assert arrays["sigmas"].shape == (S + 1,) and meta == {"roles": "cond,uncond"}
    back = GramStats.from_arrays(arrays, meta)
    assert np.array_equal(back.gram, stats.gram) and back.grid == stats.grid
    assert (back.sample_count, back.element_count, back.roles) == (3, stats.element_count, ROLES)


def test_from_arrays_names_the_source_and_the_problem():
    arrays, meta = GramStats.from_trajectories(trajectories(2, seed=12), GRID).to_arrays()
    missing = {k: v for k, v in arrays.items() if k != "sigmas"}
    with pytest.raises(ValueError, match=r"my\.safetensors: missing array 'sigmas'"):
        GramStats.from_arrays(missing, meta, source="my.safetensors")
    with pytest.raises(ValueError, match="float64"):
        GramStats.from_arrays({**arrays, "gram": arrays["gram"].astype(np.float32)}, meta)
    with pytest.raises(ValueError, match=r"my\.safetensors: .*\[R\*S, R\*S\]"):
        GramStats.from_arrays(arrays, {"roles": "cond"}, source="my.safetensors")
    with pytest.raises(ValueError, match="shape \\[1\\]"):
        GramStats.from_arrays({**arrays, "sample_count": np.array([1, 2])}, meta)


def test_stats_are_immutable():
    stats = GramStats.from_trajectories(trajectories(2, seed=13), GRID)
    with pytest.raises(ValueError):
        stats.gram[0, 0] = 1.0
    source = np.eye(2 * S)
    copy = GramStats(source, 1, 1, GRID, ROLES)
    source[0, 0] = 5.0
    assert copy.gram[0, 0] == 1.0


def test_uniform_grid_single_role_default():
    grid = StepGrid.uniform(4)
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    stats = GramStats.from_trajectories({"cond": x}, grid)
    assert stats.roles == ("cond",) and stats.elements_per_sample == 6
    rec = TrajectoryRecorder(grid, compute_dtype=torch.float64)
    for s in range(4):
        rec.record(s, {"cond": x[:, s]})
    assert_gram_close(rec.finish().gram, stats.gram)
