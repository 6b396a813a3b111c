"""The trajectory sample: fixed size whatever the resolution, faithful values, uniform reservoir, file round trip."""
import numpy as np
import pytest
import torch

from comfyui_l2p.predictors.engine.grid import StepGrid
from comfyui_l2p.predictors.files.predictor_file import PredictorFile
from comfyui_l2p.predictors.files.storage import load_predictor_file, save_predictor_file
from comfyui_l2p.predictors.calibration.trajectory_sample import TrajectorySample, TrajectorySampler

GRID = StepGrid.uniform(6)
ROLES = ("cond", "uncond")


def coded_outputs(shape, step, run=0):
    """Outputs whose values encode where they come from: element e of the flattened [N, ...] tensor at ``step``
    of role r is run * 1e5 + e + 0.5 * step + 0.25 * r (exact in float32 for the sizes used here)."""
    flat = torch.arange(int(np.prod(shape)), dtype=torch.float32) + run * 1e5 + 0.5 * step
    return {role: (flat + 0.25 * r).reshape(shape) for r, role in enumerate(ROLES)}


def sample_run(shape, run=0, per_run=64, seed=0):
    sampler = TrajectorySampler(GRID, ROLES, per_run=per_run, seed=seed)
    for step in range(GRID.num_steps):
        sampler.record(step, coded_outputs(shape, step, run))
    return sampler.finish()


def test_a_run_keeps_per_run_positions_per_row_with_every_role_and_step():
    shape = (3, 4, 8, 8)  # 3 rows of 256 elements
    s = sample_run(shape, per_run=64)
    assert s.values.shape == (3 * 64, 2, GRID.num_steps) and s.seen_count == 3 * 64
    start = s.values[:, 0, 0]  # element index in the flat tensor
    # the same element at every step and role
    expected = start[:, None, None] + 0.5 * np.arange(GRID.num_steps) + 0.25 * np.arange(2)[:, None]
    np.testing.assert_array_equal(s.values, expected.astype(np.float32))
    rows = (start // 256).astype(int)
    assert np.bincount(rows).tolist() == [64, 64, 64]  # per_run positions in every batch row
    assert len(np.unique(start)) == start.size  # distinct within rows
    # a row smaller than per_run keeps all its elements
    small = sample_run((2, 5), per_run=64)
    assert sorted(small.values[:, 0, 0].tolist()) == list(range(10))


def test_positions_are_seeded():
    a, b, c = sample_run((1, 500), seed=1), sample_run((1, 500), seed=1), sample_run((1, 500), seed=2)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)


def test_size_stays_at_capacity_whatever_the_resolution_and_run_count():
    capacity = 300
    total = TrajectorySample.empty(GRID, ROLES)
    rng = np.random.default_rng(0)
    for run in range(30):
        shape = (1, 4, 8, 8) if run % 2 else (2, 16, 32, 32)  # two latent sizes, 256 and 16384 elements per row
        total = total.merge(sample_run(shape, run=run, seed=run), capacity, rng)
        assert total.size == min(capacity, total.seen_count)
    assert total.size == capacity
    assert total.nbytes() == capacity * len(ROLES) * GRID.num_steps * 4
    assert total.seen_count == 15 * 64 + 15 * 128
    # every kept row is a whole trajectory of one element (not a mix of two)
    start = total.values[:, 0, :1]
    np.testing.assert_array_equal(total.values[:, 0, :] - start, np.broadcast_to(0.5 * np.arange(6), (capacity, 6)))


def test_reservoir_is_uniform_over_early_and_late_runs():
    capacity, runs, per_run = 1000, 100, 50
    total = TrajectorySample.empty(GRID, ("cond",))
    rng = np.random.default_rng(123)
    for run in range(runs):
        values = np.full((per_run, 1, GRID.num_steps), float(run), dtype=np.float32)
        total = total.merge(TrajectorySample(values, GRID.array, ("cond",), per_run), capacity, rng)
    run_of = total.values[:, 0, 0].astype(int)
    counts = np.bincount(run_of, minlength=runs)
    assert counts.sum() == capacity
    # uniform: each run keeps capacity / runs = 10 on average; 20 runs keep ~200 (binomial sd ~13)
    early, late = counts[:20].sum(), counts[-20:].sum()
    assert 150 <= early <= 250 and 150 <= late <= 250, (early, late)
    chi2 = float(((counts.reshape(10, 10).sum(1) - 100.0) ** 2 / 100.0).sum())
    assert chi2 < 27.9, chi2  # 9 degrees of freedom, p = 0.001


def test_incomplete_or_finished_runs_are_refused():
    sampler = TrajectorySampler(GRID, ROLES, per_run=4)
    sampler.record(0, coded_outputs((1, 8), 0))
    sampler.record(2, coded_outputs((1, 8), 2))
    with pytest.raises(ValueError, match=r"skipped steps \[1, 3, 4, 5\]"):
        sampler.finish()
    sampler = TrajectorySampler(GRID, ROLES, per_run=4)
    sampler.record(1, coded_outputs((1, 8), 1))
    with pytest.raises(ValueError, match="after step 1"):
        sampler.record(1, coded_outputs((1, 8), 1))
    with pytest.raises(ValueError, match="roles"):
        sampler.record(2, {"cond": torch.zeros(1, 8)})
    with pytest.raises(ValueError, match="layout changed"):
        sampler.record(2, coded_outputs((1, 9), 2))
    sampler.abandon()
    with pytest.raises(RuntimeError, match="one per run"):
        sampler.record(3, coded_outputs((1, 8), 3))


def test_merge_refuses_other_roles_or_grid():
    s = sample_run((1, 32), per_run=8)
    with pytest.raises(ValueError, match="roles"):
        TrajectorySample.empty(GRID, ("cond",)).merge(s, 10)
    with pytest.raises(ValueError, match="another grid"):
        TrajectorySample.empty(StepGrid.uniform(6, start=2.0), ROLES).merge(s, 10)


def test_arrays_round_trip_through_a_predictor_file(tmp_path):
    s = sample_run((2, 64), per_run=16)
    big = TrajectorySample(s.values, s.sigmas, s.roles, (1 << 30) + 12345)  # beyond float32's exact integers
    pf = PredictorFile(steps=GRID.num_steps, model_family="flux", roles=ROLES, paper_matrix=np.eye(6),
                       lesa=big.to_arrays())
    path = save_predictor_file(tmp_path / "p.safetensors", pf)
    back = TrajectorySample.from_arrays(load_predictor_file(path).lesa, ROLES)
    np.testing.assert_array_equal(back.values, big.values)
    np.testing.assert_allclose(back.sigmas, big.sigmas, rtol=1e-7)
    assert back.seen_count == big.seen_count and back.roles == ROLES
    with pytest.raises(ValueError, match="R = 1 roles"):
        TrajectorySample.from_arrays(big.to_arrays(), ("cond",))
    with pytest.raises(ValueError, match="missing lesa tensors"):
        TrajectorySample.from_arrays({}, ROLES)


def test_merging_two_subsampled_reservoirs_weighs_them_by_what_they_saw():
    # reservoirs of 500 standing for 3000 and 1000 trajectories (e.g. two machines' files): a uniform sample of all
    # 4000 takes 3/4 of its 500 from the first (hypergeometric: sd ~8.6), not half as two equal sizes would suggest
    def reservoir(label, seen, rows=500):
        values = np.stack([np.full((1, GRID.num_steps), label * 1e4 + i, dtype=np.float32) for i in range(rows)])
        return TrajectorySample(values, GRID.array, ("cond",), seen)

    from_first = []
    for seed in range(20):
        merged = reservoir(0, 3000).merge(reservoir(1, 1000), capacity=500, rng=np.random.default_rng(seed))
        assert merged.size == 500 and merged.seen_count == 4000
        ids = merged.values[:, 0, 0]
        assert len(np.unique(ids)) == 500  # whole, distinct trajectories of the inputs
        from_first.append(int(np.sum(ids < 1e4)))
    assert 365 <= np.mean(from_first) <= 385, from_first
    # a capacity above what a subsampled side holds is capped, so its share is never padded with the other's
    small = reservoir(0, 3000, rows=100).merge(reservoir(1, 1000, rows=100), capacity=500,
                                              rng=np.random.default_rng(0))
    assert small.size == 100 and small.seen_count == 4000
