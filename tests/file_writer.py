"""A separate process that adds runs to one predictor file, for the two-process test (tests/test_file_update.py).

    python3 tests/file_writer.py PATH WORKER RUNS GO_FILE

Waits until GO_FILE exists (so the writers start together), then adds RUNS one-run calibrations, seeded
1000 * WORKER + run (``file_cases.int_stats``: integer Grams, so the expected sum is exact), each with a 4-row
LESA sample, through ``update.extend_calibration_file`` exactly as L2P Calibrate does.
"""
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]
import conftest  # noqa: E402,F401  (registers the pack as comfyui_l2p)

from comfyui_l2p.predictors.files.update import extend_calibration_file  # noqa: E402
from file_cases import identity, int_stats, trajectories  # noqa: E402


def main(path: str, worker: int, runs: int, go: str) -> None:
    while not os.path.exists(go):
        time.sleep(0.001)
    for run in range(runs):
        seed = 1000 * worker + run
        extend_calibration_file(
            path, int_stats(seed), trajectories(seed, 4), extra={"model_identity": identity().to_metadata(),
                                                               "contributors": f'{{"worker{worker}": 1}}'},
            model_family="flux", model_class="Flux", latent_channels=16, ridge=1e-3, fit_mode="teacher-forced",
            created_by="test", cfg_mode="none", sampler="euler", scheduler="simple",
        )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
