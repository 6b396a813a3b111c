"""One ComfyUI process calibrating, for the two-process test in tests/test_comfy_files.py.

    COMFYUI_PATH=... python3 tests/comfy_calibrate_worker.py FOLDER WORKER RUNS GO_FILE [learn]

Boots ComfyUI in-process (comfy_host), points models/l2p/ at FOLDER, waits for GO_FILE, then queues RUNS short
samplings of one tiny FLUX through two nodes: one writing a file the other worker writes too ("shared.safetensors"
by L2P Calibrate; with "learn", the setup's auto-...safetensors by L2P Cache learning, asked to learn from more
images than the runs give) and an L2P Calibrate writing "own<WORKER>.safetensors" (this worker's runs only, the
reference for the sum).
"""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conftest  # noqa: E402,F401  (registers the pack as comfyui_l2p)
import comfy_host  # noqa: E402
import comfy_sampling
import tiny_models


def calibrate(pack, tiny, name: str):
    return comfy_host.run_node(pack.nodes["L2PCalibrate"], model=tiny.patcher, file_name=name, ridge_lambda=1e-3,
                               mode="teacher-forced", on_policy_speedup=2.5)[0]


def learn(pack, tiny):
    auto = sys.modules[f"{pack.module.__name__}.nodes.learn_setup"].AUTO_FILE
    return comfy_host.run_node(pack.nodes["L2PCache"], model=tiny.patcher, predictor_file=auto, speedup=2.5,
                               placement="optimized", warmup_steps=1, compute_last_step=False, residual_budget=0.05,
                               history_device="model device", predictor="direct", step_grid_mismatch="refuse",
                               learning_images=256)[0]


def main(folder: str, worker: int, runs: int, go: str, shared_by: str = "calibrate") -> None:
    comfy_host.bootstrap()
    pack = comfy_host.load_pack_in_comfyui()
    import folder_paths

    folder_paths.folder_names_and_paths["l2p"] = ([folder], {".safetensors"})
    tiny = tiny_models.tiny_flux(seed=50)
    shared = learn(pack, tiny) if shared_by == "learn" else calibrate(pack, tiny, "shared.safetensors")
    nodes = [shared, calibrate(pack, tiny, f"own{worker}.safetensors")]
    while not os.path.exists(go):
        time.sleep(0.001)
    for run in range(runs):
        for patched in nodes:
            comfy_sampling.sample(patched, steps=3, cfg=1.0, seed=100 * worker + run)
    for patched in nodes:
        lost = [n for r in patched.model_options["transformer_options"]["l2p"].reports for n in r.notes
                if "NOT saved" in n]
        if lost:
            raise SystemExit(f"worker {worker}: {lost[0]}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], *sys.argv[5:6])
