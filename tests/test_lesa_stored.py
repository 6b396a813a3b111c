"""LESA's trained experts stored in the predictor file (predictors/forecasters/lesa/stored.py) and the training's
progress callback: a stored model is used only while it is current for the file's sample and recipe."""
import dataclasses

import numpy as np
import pytest
import torch

from comfyui_l2p.predictors.files.predictor_file import PredictorFile
from comfyui_l2p.predictors.files.storage import load_predictor_file, save_predictor_file
from comfyui_l2p.predictors.forecasters.lesa.model import LesaModel, with_lesa
from comfyui_l2p.predictors.forecasters.lesa.stored import (
    TRAINED_FROM_KEY, file_sample, stored_model, training_identity, with_trained,
)
from comfyui_l2p.predictors.forecasters.lesa.train import LesaTrainConfig, train_lesa
from comfyui_l2p.predictors.calibration.trajectory_sample import TrajectorySample
from test_lesa import GRID, tanh_trajectories

QUICK = LesaTrainConfig(phase1_iters=6, phase2_iters=4, batch=16, seed=1)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def sample_of(count: int, seed: int) -> TrajectorySample:
    values = tanh_trajectories(count, GRID, seed=seed)[:, None, :]
    return TrajectorySample(values, GRID.array, ("cond",), count)


def file_with(sample: TrajectorySample | None) -> PredictorFile:
    lesa = {} if sample is None else sample.to_arrays()
    return PredictorFile(steps=GRID.num_steps, model_family="flux", sigmas=GRID.array,
                         paper_matrix=np.eye(GRID.num_steps), lesa=lesa)


@pytest.fixture(scope="module")
def trained():
    sample = sample_of(64, seed=0)
    model, _ = train_lesa(sample, config=QUICK)
    return sample, model


def same_model(a: LesaModel, b: LesaModel) -> bool:
    return all(torch.equal(x[k], y[k]) for x, y in zip(a.experts, b.experts) for k in x)


def test_identity_follows_the_sample_and_the_recipe():
    a, b = sample_of(64, seed=0), sample_of(64, seed=0)
    assert np.array_equal(training_identity(a, QUICK), training_identity(b, QUICK))
    assert not np.array_equal(training_identity(a, QUICK), training_identity(sample_of(64, seed=5), QUICK))
    more_seen = TrajectorySample(a.values, a.sigmas, a.roles, a.seen_count + 1)  # same kept values, more merged
    assert not np.array_equal(training_identity(a, QUICK), training_identity(more_seen, QUICK))
    other_recipe = dataclasses.replace(QUICK, phase1_iters=7)
    assert not np.array_equal(training_identity(a, QUICK), training_identity(a, other_recipe))
    identity = training_identity(a, QUICK)
    assert identity.dtype == np.float32 and np.all(identity == np.round(identity)) and np.all(identity < 2 ** 24)


def test_a_stored_model_round_trips_and_is_used_while_current(trained, tmp_path):
    sample, model = trained
    path = tmp_path / "lesa.safetensors"
    save_predictor_file(path, with_trained(file_with(sample), model, training_identity(sample, QUICK)))
    pf = load_predictor_file(path)
    assert TRAINED_FROM_KEY in pf.lesa and file_sample(pf).size == 64
    loaded = stored_model(pf, QUICK, str(path))
    assert loaded is not None and same_model(loaded, model)
    assert stored_model(pf, dataclasses.replace(QUICK, seed=2), str(path)) is None  # another recipe: retrain


def test_a_changed_sample_or_an_old_file_retrains_and_a_model_without_sample_is_used(trained):
    sample, model = trained
    current = with_trained(file_with(sample), model, training_identity(sample, QUICK))
    changed = dataclasses.replace(current, lesa={**current.lesa, **sample_of(64, seed=9).to_arrays()})
    assert stored_model(changed, QUICK) is None
    old_style = with_lesa(file_with(sample), model)  # a model stored without what it was trained from
    assert TRAINED_FROM_KEY not in old_style.lesa and stored_model(old_style, QUICK) is None
    no_sample = with_lesa(file_with(None), model)  # made elsewhere: nothing to retrain from, used as it is
    assert same_model(stored_model(no_sample, QUICK), model)
    assert stored_model(file_with(sample), QUICK) is None  # never trained


@pytest.mark.parametrize("device", DEVICES)
def test_progress_is_reported_after_every_iteration_and_the_model_returns_on_the_cpu(device):
    calls = []
    model, report = train_lesa(sample_of(32, seed=3), config=QUICK, progress=lambda d, t: calls.append((d, t)),
                               device=device)
    assert calls == [(i, 10) for i in range(1, 11)] and len(report.losses) == 10
    assert all(t.device.type == "cpu" for ex in model.experts for t in ex.values())


def test_l2p_cache_keeps_no_lesa_model_alive_after_handing_it_over(trained, tmp_path, monkeypatch):
    # Nothing may grow for the life of a ComfyUI session: the experts live in each file, so lesa_setup holds no
    # per-file cache (it once kept every trained model in a module-level dict). Several files trained and loaded,
    # each model dropped by its caller: none survives.
    import gc
    import weakref

    from comfyui_l2p.nodes import lesa_setup

    monkeypatch.setattr(lesa_setup, "LESA_TRAINING", QUICK)
    sample, model = trained
    alive = []
    for index in range(3):
        trains = tmp_path / f"train{index}.safetensors"  # no experts stored yet: trained now, then stored
        save_predictor_file(trains, file_with(sample_of(32, seed=10 + index)))
        stored = tmp_path / f"stored{index}.safetensors"  # experts current: loaded from the file
        save_predictor_file(stored, with_trained(file_with(sample), model, training_identity(sample, QUICK)))
        for path in (trains, stored):
            alive.append(weakref.ref(lesa_setup.lesa_model(str(path), load_predictor_file(path))))
    assert stored_model(load_predictor_file(tmp_path / "train0.safetensors"), QUICK, "train0") is not None  # stored
    gc.collect()
    assert [ref() for ref in alive] == [None] * len(alive)
