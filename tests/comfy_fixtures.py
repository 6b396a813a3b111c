"""pytest glue for real-ComfyUI tests: the ``comfy`` and ``pack`` fixtures, the ``requires_comfyui`` mark, a skip
summary.

Use in a test module (works today, no conftest change needed):

    import tiny_models
    from comfy_fixtures import comfy, requires_comfyui   # noqa: F401  (pytest finds fixtures by name)

    @requires_comfyui
    def test_something(comfy):
        tiny = tiny_models.tiny_flux()
        ...

Tests that need ComfyUI are SKIPPED, with ``comfy_host.SKIP_REASON`` as the reason, when ``COMFYUI_PATH`` is
unset. When ``tests/conftest.py`` declares ``pytest_plugins = ["comfy_fixtures"]`` this module is also a plugin:
the fixture is available everywhere, the ``comfy`` marker is registered (``@pytest.mark.comfy`` skips like
``requires_comfyui``, and every test using the fixture gets it, so ``-m comfy`` selects the real-ComfyUI tests), the host (ComfyUI version and path, or none) is named in the header and again at the end
of the run, and the skip reason is printed once at the end even under ``-q``.
"""
from __future__ import annotations

import pytest

import comfy_host

_skip_without_comfyui = pytest.mark.skipif(comfy_host.comfyui_path() is None, reason=comfy_host.SKIP_REASON)


def requires_comfyui(test):
    """Mark a test as needing ComfyUI: skipped without COMFYUI_PATH, selected by ``-m comfy`` (what .ci/run runs
    per host)."""
    return pytest.mark.comfy(_skip_without_comfyui(test))


_skipped_for_comfy: list[str] = []


@pytest.fixture(scope="session")
def comfy() -> comfy_host.ComfyModules:
    """ComfyUI's modules, bootstrapped once per session from ``COMFYUI_PATH`` (CPU only); skips when unset."""
    if comfy_host.comfyui_path() is None:
        pytest.skip(comfy_host.SKIP_REASON)
    return comfy_host.bootstrap()


@pytest.fixture(scope="session")
def pack(comfy) -> comfy_host.LoadedPack:
    """This pack, loaded into ComfyUI the way its startup loads custom nodes (once per process)."""
    return comfy_host.load_pack_in_comfyui()


@pytest.fixture()
def l2p_dir(comfy, tmp_path):
    """ComfyUI's models/l2p/ redirected to a temporary folder, so tests never write into the checkout."""
    import folder_paths

    saved = folder_paths.folder_names_and_paths.get("l2p")
    folder_paths.folder_names_and_paths["l2p"] = ([str(tmp_path)], {".safetensors", ".txt"})
    yield tmp_path
    if saved is None:
        folder_paths.folder_names_and_paths.pop("l2p", None)
    else:
        folder_paths.folder_names_and_paths["l2p"] = saved


# ----------------------------------------------------------------- hooks: active when loaded as a plugin


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "comfy: needs a real ComfyUI checkout (COMFYUI_PATH); skipped without one")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # every test that needs ComfyUI carries the `comfy` marker, also those that only ask for the fixture (directly
    # or through another fixture), so `-m comfy` selects exactly the real-ComfyUI tests
    for item in items:
        if "comfy" in getattr(item, "fixturenames", ()) and item.get_closest_marker("comfy") is None:
            item.add_marker(pytest.mark.comfy)
    if comfy_host.comfyui_path() is not None:
        return
    skip = pytest.mark.skip(reason=comfy_host.SKIP_REASON)
    for item in items:
        if item.get_closest_marker("comfy") is not None:
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and comfy_host.SKIP_REASON in str(report.longrepr):
        _skipped_for_comfy.append(report.nodeid)


def pytest_report_header(config: pytest.Config) -> str:
    return comfy_host.host_line()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    # printed under -q too (the header is not): a run's log always says which ComfyUI it tested against
    terminalreporter.write_line(comfy_host.host_line())
    if _skipped_for_comfy:
        terminalreporter.write_line(f"{len(_skipped_for_comfy)} tests skipped: {comfy_host.SKIP_REASON}")
