"""Tests of the real-ComfyUI host harness (tests/comfy_host.py): host detection, bootstrap, pack loading, run_node.
The tiny models, sampling and pass counting built on it: test_comfy_tiny_models.py."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import comfy_host
import tiny_models
from comfy_fixtures import comfy, requires_comfyui  # noqa: F401  (fixture used by name)


@pytest.fixture(scope="module")
def flux(comfy):
    return tiny_models.tiny_flux(seed=0)


# ------------------------------------------------------------------------------------- bootstrap / loading


def test_unset_path_skips_with_reason(tmp_path):
    test_file = tmp_path / "test_needs_comfy.py"
    test_file.write_text(textwrap.dedent(
        """
        import pytest
        from comfy_fixtures import comfy, requires_comfyui

        def test_fixture(comfy):
            raise AssertionError("must not run")

        @requires_comfyui
        def test_mark():
            raise AssertionError("must not run")

        @pytest.mark.comfy
        def test_marker():
            raise AssertionError("must not run")
        """
    ))
    env = {k: v for k, v in os.environ.items() if k != comfy_host.ENV_VAR}
    env["PYTHONPATH"] = str(Path(comfy_host.__file__).parent)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "comfy_fixtures", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 skipped" in out.stdout, out.stdout
    assert f"3 tests skipped: {comfy_host.SKIP_REASON}" in out.stdout, out.stdout
    assert "real-ComfyUI host: none (COMFYUI_PATH is not set)" in out.stdout, out.stdout


def test_host_line_names_the_version_and_path_that_run(comfy):
    import comfyui_version  # the checkout's own module, importable once bootstrapped

    assert comfy_host.host_line() == f"real-ComfyUI host: ComfyUI {comfyui_version.__version__} at {comfy.path}"


def test_bootstrap_resolves_comfyui_modules(comfy):
    assert Path(comfy.nodes.__file__).resolve() == comfy.path / "nodes.py"
    assert comfy.model_management.get_torch_device() == torch.device("cpu")
    # the pack stays importable under its test name next to ComfyUI's top-level `nodes`
    import comfyui_l2p.predictors.engine.grid  # noqa: F401


@requires_comfyui
def test_bootstrap_refuses_a_shadowed_nodes_module(tmp_path):
    # what happens when the pack's own `nodes/` got imported as top-level `nodes` (cwd on sys.path)
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "__init__.py").write_text("")
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import nodes, comfy_host
        try:
            comfy_host.bootstrap()
        except comfy_host.ComfyHostError as e:
            print("REFUSED", e)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(Path(comfy_host.__file__).parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "REFUSED module 'nodes' is already imported from" in out.stdout, out.stdout + out.stderr
    assert "comfyui_l2p" in out.stdout


V3_PACK_INIT = '''
from .nodes.echo import EchoModel
from comfy_api.latest import ComfyExtension


class HarnessExtension(ComfyExtension):
    async def get_node_list(self):
        return [EchoModel]


async def comfy_entrypoint():
    return HarnessExtension()
'''

V3_PACK_NODE = '''
from comfy_api.latest import io


class EchoModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HarnessEchoModel", display_name="Harness Echo Model", category="testing",
            inputs=[io.Model.Input("model"), io.Float.Input("strength", default=1.0, min=0.0, max=10.0)],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, strength):
        m = model.clone()
        m.model_options["transformer_options"]["harness_strength"] = strength
        return io.NodeOutput(m)
'''


def test_load_pack_in_comfyui_registers_v3_nodes(tmp_path, flux):
    pack = tmp_path / "harness_pack"
    (pack / "nodes").mkdir(parents=True)  # a `nodes` subpackage, like ours, must not clash with ComfyUI's
    (pack / "__init__.py").write_text(V3_PACK_INIT)
    (pack / "nodes" / "__init__.py").write_text("")
    (pack / "nodes" / "echo.py").write_text(V3_PACK_NODE)

    loaded = comfy_host.load_pack_in_comfyui(pack)

    assert list(loaded.nodes) == ["HarnessEchoModel"]
    assert loaded.display_names == {"HarnessEchoModel": "Harness Echo Model"}
    node_cls = loaded.nodes["HarnessEchoModel"]
    assert node_cls.RELATIVE_PYTHON_MODULE == "custom_nodes.harness_pack"
    (patched,) = comfy_host.run_node(node_cls, model=flux.patcher, strength=2.5)
    assert patched is not flux.patcher
    assert patched.model_options["transformer_options"]["harness_strength"] == 2.5
    assert "harness_strength" not in flux.patcher.model_options.get("transformer_options", {})


def test_load_pack_failure_raises_with_comfyui_log(tmp_path, comfy):
    pack = tmp_path / "broken_pack"
    pack.mkdir()
    (pack / "__init__.py").write_text("raise ImportError('deliberately broken')\n")
    with pytest.raises(comfy_host.ComfyHostError, match="deliberately broken"):
        comfy_host.load_pack_in_comfyui(pack)
