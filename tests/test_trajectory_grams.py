"""Per-trajectory Grams: exact per batch row, a bounded bottom-k sample whose merge is a pure function of the two
samples (equal to sampling the union), stored in the predictor file and carried through every merge path; files
without it load and extend as before."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from comfyui_l2p.predictors.calibration.gram import GramStats
from comfyui_l2p.predictors.calibration.trajectory_grams import TrajectoryGrams, content_key
from comfyui_l2p.predictors.files.calibration_file import file_from_stats, stats_from_file
from comfyui_l2p.predictors.files.update import extend_calibration_file
from comfyui_l2p.predictors.files.predictor_file import PredictorFileError
from comfyui_l2p.predictors.files.storage import load_predictor_file, save_predictor_file

from test_calibration import GRID, ROLES, S, record_run, trajectories, whole_gram

FILE_FIELDS = dict(model_family="flux", model_class="Flux", latent_channels=3, ridge=1e-6, fit_mode="teacher-forced",
                   created_by="test")


def per_row_grams(traj) -> np.ndarray:
    n = traj[ROLES[0]].shape[0]
    return np.stack([whole_gram({r: traj[r][i:i + 1] for r in ROLES}) for i in range(n)])


def random_grams(n: int, seed: int, dim: int = 4) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim, 6))
    return np.einsum("nie,nje->nij", x, x)


def test_recorder_keeps_each_batch_row_as_one_trajectory():
    traj = trajectories(3, seed=1)
    stats = record_run(traj)
    rows = per_row_grams(traj)
    kept = stats.trajectories.grams
    assert stats.trajectories.size == 3 and stats.trajectories.seen_count == 3
    matches = [int(np.argmin([np.max(np.abs(got - r)) for r in rows])) for got in kept]
    assert sorted(matches) == [0, 1, 2]  # every row kept once, exactly
    np.testing.assert_allclose(kept, rows[matches], rtol=0, atol=1e-12 * np.max(np.abs(rows)))
    np.testing.assert_allclose(stats.gram, rows.sum(0), rtol=1e-12)  # G is the sum of the rows' Grams


def test_merge_is_the_bottom_k_of_the_union_whatever_the_order():
    grams = random_grams(20, seed=0)
    a, b, c = TrajectoryGrams.of(grams[:7], 5), TrajectoryGrams.of(grams[7:12], 5), TrajectoryGrams.of(grams[12:], 5)
    direct = TrajectoryGrams.of(grams, 5)
    for merged in (a.merge(b, 5).merge(c, 5), c.merge(a, 5).merge(b, 5), a.merge(b.merge(c, 5), 5)):
        np.testing.assert_array_equal(merged.keys, direct.keys)
        np.testing.assert_array_equal(merged.grams, direct.grams)
        assert merged.seen_count == 20 and merged.size == 5
    keys = sorted(content_key(g) for g in grams)
    np.testing.assert_array_equal(direct.keys, keys[:5])  # the 5 smallest content keys of all 20


def test_content_keys_are_deterministic_and_spread():
    grams = random_grams(200, seed=3)
    keys = np.array([content_key(g) for g in grams])
    assert np.array_equal(keys, [content_key(g.copy()) for g in grams])
    assert np.all((keys >= 0) & (keys < 1)) and len(set(keys)) == 200
    assert 0.35 < keys.mean() < 0.65  # roughly uniform: a bottom-k sample is then a uniform one


def test_stats_merge_carries_the_samples_and_old_statistics_add_none():
    one, two = record_run(trajectories(2, seed=4)), record_run(trajectories(3, seed=5))
    merged = one.merge(two)
    assert merged.trajectories.size == 5 and merged.trajectories.seen_count == 5
    np.testing.assert_allclose(merged.trajectories.grams.sum(0), merged.gram, rtol=1e-12)
    old = GramStats(one.gram, one.sample_count, one.element_count, GRID, ROLES)  # a file made before
    mixed = old.merge(two)
    assert mixed.trajectories.seen_count == 3 and mixed.sample_count == 5
    assert old.merge(old).trajectories is None


def test_arrays_round_trip_and_refusals():
    stats = record_run(trajectories(2, seed=6))
    arrays, meta = stats.to_arrays()
    back = GramStats.from_arrays(arrays, meta)
    np.testing.assert_array_equal(back.trajectories.grams, stats.trajectories.grams)
    assert back.trajectories.seen_count == 2
    with pytest.raises(ValueError, match="my.safetensors: .*trajectory_grams.*float64"):
        GramStats.from_arrays({**arrays, "trajectory_grams": arrays["trajectory_grams"][:, :3]}, meta,
                              source="my.safetensors")
    with pytest.raises(ValueError, match="ascending"):
        TrajectoryGrams(random_grams(2, 0), [0.9, 0.1], 2)
    with pytest.raises(ValueError, match="more than the 1"):
        GramStats(stats.gram, 1, 1000, GRID, ROLES, stats.trajectories)


def test_the_file_keeps_the_sample_and_extending_merges_it(tmp_path):
    path = str(tmp_path / "cal.safetensors")
    first, second = record_run(trajectories(2, seed=7)), record_run(trajectories(2, seed=8))
    extend_calibration_file(path, first, **FILE_FIELDS)
    extend_calibration_file(path, second, **FILE_FIELDS)
    stats = stats_from_file(load_predictor_file(path), path)
    expected = first.merge(second)
    np.testing.assert_array_equal(stats.trajectories.keys, expected.trajectories.keys)
    np.testing.assert_allclose(stats.trajectories.grams, expected.trajectories.grams, rtol=1e-15)


def test_a_file_without_the_sample_loads_and_extends(tmp_path):
    path = str(tmp_path / "old.safetensors")
    old = record_run(trajectories(2, seed=9))
    old = GramStats(old.gram, old.sample_count, old.element_count, old.grid, old.roles)
    save_predictor_file(path, file_from_stats(old, **FILE_FIELDS))
    assert stats_from_file(load_predictor_file(path), path).trajectories is None
    extend_calibration_file(path, record_run(trajectories(1, seed=10)), **FILE_FIELDS)
    stats = stats_from_file(load_predictor_file(path), path)
    assert stats.sample_count == 3 and stats.trajectories.seen_count == 1


def test_a_damaged_sample_is_refused_naming_the_file(tmp_path):
    import safetensors.numpy

    path = str(tmp_path / "bad.safetensors")
    pf = file_from_stats(record_run(trajectories(2, seed=11)), **FILE_FIELDS)
    tensors = pf.tensors()
    tensors["trajectory_seen"] = np.array([99], dtype=np.int64)
    with open(path, "wb") as handle:
        handle.write(safetensors.numpy.save(tensors, metadata=pf.metadata()))
    with pytest.raises(PredictorFileError, match="bad.safetensors.*trajectory_seen"):
        load_predictor_file(path)


def test_the_merge_command_path_carries_the_sample_and_the_later_schedule_model():
    import dataclasses

    from comfyui_l2p.predictors.files.merge import merge_predictor_files
    from comfyui_l2p.predictors.schedules import error_growth

    first, second = record_run(trajectories(2, seed=12)), record_run(trajectories(3, seed=13))
    a = dataclasses.replace(file_from_stats(first, **FILE_FIELDS), extra={error_growth.POWER_KEY: "1.0"})
    b = dataclasses.replace(file_from_stats(second, **FILE_FIELDS), extra=error_growth.to_metadata())
    merged = merge_predictor_files(a, b).file
    expected = first.merge(second).trajectories
    got = stats_from_file(merged, "merged").trajectories
    np.testing.assert_array_equal(got.keys, expected.keys)
    assert got.seen_count == 5
    assert error_growth.for_guidance(False, merged.extra) == error_growth.DEFAULT  # the later calibration's model
    older = dataclasses.replace(a, trajectories={}, extra={})
    result = merge_predictor_files(older, b)
    assert stats_from_file(result.file, "m").trajectories.seen_count == 3
    assert any("no per-trajectory Grams" in n for n in result.notes)
    assert error_growth.for_guidance(True, result.file.extra) == error_growth.DEFAULT_CFG
