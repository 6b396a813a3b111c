"""The benchmark's robust pieces: images sampled one by one equal the batched run for a fixed plan, the
trajectory-count draws and the 'enough' rule, and the growth exponent fit."""
import numpy as np
import torch

from comfyui_l2p.benchmark import gains, harness, trajectories
from comfyui_l2p.benchmark.harness import Batch, Scenario
from comfyui_l2p.benchmark.variants import VARIANTS


def test_sampling_one_by_one_equals_the_batched_run_for_a_fixed_plan():
    model = harness.load_model()
    fora = next(v for v in VARIANTS if v.name == "FORA").build(3.0, None)
    scenario, samples = Scenario("t", 1.0, steps=9), Batch((1, 8), (3, 4))
    batched = harness.sample_with(model, scenario, samples, fora)
    each = harness.sample_each(model, scenario, samples, fora)
    torch.testing.assert_close(each.latents, batched.latents, rtol=1e-4, atol=1e-5)
    assert each.report.transformer_calls == batched.report.transformer_calls  # per image: the same plan


def test_draws_are_distinct_subsets_and_the_whole_pool_once():
    pool = Batch(tuple(range(10)), tuple(range(100, 110)))
    draws = trajectories.draws_of(pool, 3, 4, seed=0)
    assert len(draws) == 4 and all(len(d.labels) == 3 and len(set(d.labels)) == 3 for d in draws)
    assert all(set(zip(d.labels, d.seeds)) <= set(zip(pool.labels, pool.seeds)) for d in draws)
    assert len({d.labels for d in draws}) > 1
    assert trajectories.draws_of(pool, 10, 4, seed=0) == [pool]


def test_enough_is_the_smallest_count_whose_lowest_draw_is_within_tolerance():
    cells = {1: [(40.0, 39.0, 30.0)], 2: [(40.7, 40.6, 31.0)], 4: [(40.9, 40.8, 31.0)], 8: [(41.0, 41.0, 32.0)]}
    assert trajectories.enough(cells, 8, 0.5) == 2
    assert trajectories.enough(cells, 8, 0.1) == 8


def test_growth_exponents_recover_a_power_law():
    dsigma = -np.linspace(0.01, 0.1, 20)
    steps = list(range(1, 20, 2))
    gains_ = np.stack([np.abs(dsigma[s - 1]) ** -0.4 * np.array([0.5, 1.0, 2.0]) for s in steps])
    exps = gains.growth_exponents(steps, gains_, dsigma)
    assert all(abs(a - 0.4) < 1e-9 for a in exps.values())


def test_the_table_marks_each_count_and_names_the_smallest_enough():
    saved = {"header": ["# t"], "speedups": [4.55], "total": 8, "tolerance": 0.5,
             "results": {"no CFG": {"L2P": {"1": [[40.0, 39.0, 30.0]], "4": [[40.9, 40.8, 31.0]],
                                            "8": [[41.0, 41.0, 32.0]]}}}}
    text = trajectories.render(saved)
    assert "| 1 | 40.00 [39.00] (30.00) | no |" in text and "| 4 | 40.90 [40.80] (31.00) | yes |" in text
    assert "**4** trajectories" in text
