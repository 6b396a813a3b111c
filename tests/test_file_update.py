"""Writing a predictor file that others may be writing: the lock (stale locks too), two processes adding to one
file, the file mode, and the faults (invalid file, read-only or full folder, failed write) that never hurt a file."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from comfyui_l2p.predictors.files import lock as lockmod
from comfyui_l2p.predictors.files import storage
from comfyui_l2p.predictors.files.lock import FileLock, LockTimeout, lock_path_for
from comfyui_l2p.predictors.files.predictor_file import PredictorFileError
from comfyui_l2p.predictors.files.storage import load_predictor_file, save_predictor_file
from comfyui_l2p.predictors.files.update import update_predictor_file

from file_cases import int_stats, read_only, run_file

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------- the lock
def test_the_lock_excludes_others_and_names_the_holder_on_timeout(tmp_path):
    path = tmp_path / "f.safetensors"
    with FileLock(path) as held:
        assert held.locked and os.path.exists(lock_path_for(path))
        start = time.monotonic()
        with pytest.raises(LockTimeout, match=rf"f.safetensors.*held by process {os.getpid()} on .* since"):
            with FileLock(path, timeout=0.2):
                pass
        assert time.monotonic() - start >= 0.2
    with FileLock(path, timeout=0) as again:  # released on exit
        assert again.locked


HOLDER = """
import sys, time
sys.path.insert(0, {tests!r}); import conftest
from comfyui_l2p.predictors.files.lock import FileLock
with FileLock({path!r}):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_the_lock_of_a_killed_process_never_blocks(tmp_path):
    path = str(tmp_path / "f.safetensors")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(tests=str(HERE), path=path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockTimeout, match=f"process {holder.pid}"):
            with FileLock(path, timeout=0.1):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        start = time.monotonic()
        with FileLock(path, timeout=5) as lock:  # the dead holder's lock file is still there
            assert lock.locked and os.path.exists(lock_path_for(path))
        assert time.monotonic() - start < 1.0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_leftover_lock_file_is_only_a_file(tmp_path):
    path = tmp_path / "f.safetensors"
    Path(lock_path_for(path)).write_text("\nprocess 999999 on elsewhere since 2020-01-01 00:00:00\n")
    with FileLock(path, timeout=0) as lock:
        assert lock.locked


def test_a_filesystem_without_locks_writes_anyway_and_says_so(tmp_path, monkeypatch):
    def no_locks(fd):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lockmod, "_try_lock", no_locks)
    result = update_predictor_file(tmp_path / "f.safetensors", run_file(1))
    assert result.created and result.file.sample_count == 1
    assert any("cannot lock files" in n and "No locks available" in n for n in result.notes)


# ---------------------------------------------------------------------------------------------- two processes
def test_two_processes_adding_to_one_file_lose_nothing(tmp_path):
    path, go, runs = str(tmp_path / "shared.safetensors"), tmp_path / "go", 25
    writers = [subprocess.Popen([sys.executable, str(HERE / "file_writer.py"), path, str(w), str(runs), str(go)])
               for w in (1, 2)]
    time.sleep(1.0)  # both import and wait for the signal
    go.touch()
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    pf = load_predictor_file(path)
    assert pf.sample_count == 2 * runs and pf.extra["trajectory_count"] == str(2 * runs)
    expected = sum(int_stats(1000 * w + r).gram for w in (1, 2) for r in range(runs))
    assert np.array_equal(pf.gram, expected)  # integer Grams: the exact sum whatever the order
    assert json.loads(pf.extra["contributors"]) == {"worker1": runs, "worker2": runs}
    assert pf.lesa["traj_values"].shape[0] == 2 * runs * 4
    assert sorted(os.listdir(tmp_path)) == [".shared.safetensors.lock", "go", "shared.safetensors"]


# ---------------------------------------------------------------------------------------------- the file
def test_files_get_the_mode_of_any_new_file(tmp_path):
    old = os.umask(0o027)
    try:
        update_predictor_file(tmp_path / "a.safetensors", run_file(1))
        update_predictor_file(tmp_path / "a.safetensors", run_file(2))  # replaced: a new file again
        assert os.stat(tmp_path / "a.safetensors").st_mode & 0o777 == 0o640
        os.umask(0o022)
        update_predictor_file(tmp_path / "b.safetensors", run_file(1))
        assert os.stat(tmp_path / "b.safetensors").st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_a_file_that_fails_validation_is_named_and_never_modified(tmp_path):
    path = tmp_path / "dropped-in.safetensors"
    path.write_bytes(b"\x80\x04 a pickle from elsewhere")
    with pytest.raises(PredictorFileError, match="dropped-in.safetensors.*pickle"):
        update_predictor_file(path, run_file(1))
    assert path.read_bytes() == b"\x80\x04 a pickle from elsewhere"
    other = tmp_path / "other.safetensors"
    save_predictor_file(other, run_file(1, roles=("cond", "uncond")))
    before = other.read_bytes()
    with pytest.raises(PredictorFileError, match="other.safetensors.*different stream roles"):
        update_predictor_file(other, run_file(2))
    assert other.read_bytes() == before


def test_a_failed_write_under_the_lock_keeps_the_good_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.safetensors"
    update_predictor_file(path, run_file(1))
    before = path.read_bytes()

    def half_then_full(handle, data):
        handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "_write_bytes", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        update_predictor_file(path, run_file(2))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [".keep.safetensors.lock", "keep.safetensors"]
    with FileLock(path, timeout=0):  # and the lock was released
        pass


@pytest.fixture
def read_only_dir(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    save_predictor_file(folder / "good.safetensors", run_file(1))
    with read_only(folder):
        yield folder


def test_a_read_only_folder_raises_an_os_error_and_changes_nothing(read_only_dir):
    path = read_only_dir / "good.safetensors"
    before = path.read_bytes()
    with pytest.raises(OSError):
        update_predictor_file(path, run_file(2))
    with pytest.raises(OSError):
        update_predictor_file(read_only_dir / "new.safetensors", run_file(2))
    assert path.read_bytes() == before and sorted(os.listdir(read_only_dir)) == ["good.safetensors"]
