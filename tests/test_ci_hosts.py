"""scripts/ci_hosts.py: the ComfyUI checkouts .ci/run tests against (COMFYUI_PATH, several allowed, else the
default folder next to the repository), on fake checkouts in a temporary folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from script_modules import load_script

ROOT = Path(__file__).resolve().parents[1]
ci_hosts = load_script("ci_hosts")


def fake_checkout(path: Path, version: str | None) -> Path:
    (path / "comfy").mkdir(parents=True)
    (path / "nodes.py").write_text("")
    (path / "comfy" / "model_base.py").write_text("")
    if version is not None:
        (path / "comfyui_version.py").write_text(f'__version__ = "{version}"\n')
    return path.resolve()


def test_default_folder_gives_every_checkout_oldest_first(tmp_path):
    newest = fake_checkout(tmp_path / "hosts" / "a-newest", "0.33.0")
    oldest = fake_checkout(tmp_path / "hosts" / "z-oldest", "0.3.64")
    unknown = fake_checkout(tmp_path / "hosts" / "b-unknown", None)
    (tmp_path / "hosts" / "notes").mkdir()  # not a checkout: ignored
    hosts, where = ci_hosts.find_hosts(None, tmp_path / "hosts")
    assert hosts == [oldest, newest, unknown]
    assert where.startswith(str(tmp_path / "hosts"))
    assert ci_hosts.find_hosts("", tmp_path / "missing") == ([], f"{tmp_path / 'missing'}/*/ (COMFYUI_PATH unset)")


def test_comfyui_path_names_one_or_several_and_each_must_be_a_checkout(tmp_path):
    a, b = fake_checkout(tmp_path / "a", "0.33.0"), fake_checkout(tmp_path / "b", "0.3.64")
    assert ci_hosts.find_hosts(f"{a}{os.pathsep}{b}{os.pathsep}", tmp_path / "none") == ([a, b], "COMFYUI_PATH")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ci_hosts.NotACheckout, match="empty, which is not a ComfyUI checkout"):
        ci_hosts.find_hosts(f"{a}{os.pathsep}{tmp_path / 'empty'}", tmp_path / "none")


def test_the_script_says_in_one_line_when_it_found_none(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "ci_hosts.py")], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 0
    if not out.stdout:  # this machine keeps no checkout next to the repository
        assert out.stderr.count("\n") == 1 and "ci: no ComfyUI checkout found in" in out.stderr
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "ci_hosts.py")], capture_output=True, text=True,
                         env={**env, "COMFYUI_PATH": str(tmp_path)}, timeout=60)
    assert bad.returncode == 2 and "is not a ComfyUI checkout" in bad.stderr and not bad.stdout
