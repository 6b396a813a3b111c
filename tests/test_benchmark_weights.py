"""benchmark.weights reads each variant's forecast weights off the real engines (unit vectors as outputs)."""
import numpy as np

from comfyui_l2p.benchmark import harness, weights
from comfyui_l2p.benchmark.__main__ import SCENARIOS
from comfyui_l2p.benchmark.variants import VARIANTS

CFG = SCENARIOS[1]


def variant(name):
    return next(v for v in VARIANTS if v.name == name)


def test_fora_guided_weights_are_the_guidance_on_the_last_computed_outputs():
    model = harness.load_model()
    w = weights.guided_weights(variant("FORA").build(5.56, None), model, CFG, 5.56)
    k = w.shape[1] // 2
    g = CFG.cfg_scale
    assert w.shape[0] == CFG.steps - k  # one row per skipped step
    # each row: g on one cond output, 1 - g on the same step's uncond output, nothing else
    assert np.all(np.count_nonzero(w, axis=1) == 2)
    np.testing.assert_allclose(w[:, :k].sum(axis=1), g, rtol=1e-6)
    np.testing.assert_allclose(w[:, k:].sum(axis=1), 1 - g, rtol=1e-6)
    np.testing.assert_array_equal(np.argmax(w[:, :k], axis=1), np.argmin(w[:, k:], axis=1))


def test_taylorseer_weights_reproduce_a_linear_signal():
    model = harness.load_model()
    w = weights.guided_weights(variant("TaylorSeer-1").build(4.55, None), model, CFG, 4.55)
    k = w.shape[1] // 2
    # Lagrange weights of a degree-1 extrapolation sum to 1 per stream (times the guidance)
    np.testing.assert_allclose(w[:, :k].sum(axis=1), CFG.cfg_scale, rtol=1e-6)  # the engine sums in float32
    assert np.abs(w).sum(axis=1).max() > 5.0  # extrapolation weighs more than FORA's 5
