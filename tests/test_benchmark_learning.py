"""benchmark.learning runs the learning holder on the reference model: an empty folder learns from N images (each a
recorded run), then forecasts (each checked inside the command), and the outputs are written."""
import importlib.util
import json

from comfyui_l2p.benchmark import learning


def test_a_small_learning_benchmark_learns_then_forecasts_and_writes_its_tables(tmp_path):
    assert learning.main(["--counts", "1", "2", "--draws", "1", "--scenario", "no", "--speedups", "4.55",
                          "--cal-seeds", "1", "--eval-seeds", "1", "--out", str(tmp_path)]) == 0
    cells = json.loads((tmp_path / "learning.json").read_text())["no CFG (cond only)"]
    assert sorted(cells) == ["1", "2"]
    for (mean, lowest, worst), in cells.values():  # one speedup, one draw: the draw's mean is the mean
        assert mean == lowest and 20 < worst <= mean < 80
    assert "| 2 | " in (tmp_path / "learning.md").read_text()
    # the plot needs matplotlib, which the demo's requirements bring and the tests' do not: drawn exactly when it
    # is installed, and the tables are written either way
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert (tmp_path / "learning.png").exists() == has_matplotlib
