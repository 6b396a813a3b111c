"""One ComfyUI process calibrating, for the two-process test in tests/test_comfy_files.py.

    COMFYUI_PATH=... python3 tests/comfy_calibrate_worker.py FOLDER WORKER RUNS GO_FILE

Boots ComfyUI in-process (comfy_host), points models/l2p/ at FOLDER, waits for GO_FILE, then queues RUNS short
samplings of one tiny FLUX through two L2P Calibrate nodes: one writing "shared.safetensors" (the other worker
writes it too) and one writing "own<WORKER>.safetensors" (this worker's runs only, the reference for the sum).
"""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conftest  # noqa: E402,F401  (registers the pack as comfyui_l2p)
import comfy_host  # noqa: E402


def main(folder: str, worker: int, runs: int, go: str) -> None:
    comfy_host.bootstrap()
    pack = comfy_host.load_pack_in_comfyui()
    import folder_paths

    folder_paths.folder_names_and_paths["l2p"] = ([folder], {".safetensors"})
    tiny = comfy_host.tiny_flux(seed=50)
    nodes = [comfy_host.run_node(pack.nodes["L2PCalibrate"], model=tiny.patcher, file_name=name, ridge_lambda=1e-3,
                                 mode="teacher-forced", on_policy_speedup=2.5)[0]
             for name in ("shared.safetensors", f"own{worker}.safetensors")]
    while not os.path.exists(go):
        time.sleep(0.001)
    for run in range(runs):
        for patched in nodes:
            comfy_host.sample(patched, steps=3, cfg=1.0, seed=100 * worker + run)
    for patched in nodes:
        lost = [n for r in patched.model_options["transformer_options"]["l2p"].reports for n in r.notes
                if "NOT saved" in n]
        if lost:
            raise SystemExit(f"worker {worker}: {lost[0]}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
