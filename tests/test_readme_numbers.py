"""The README says what was measured and what the code does: its result tables equal the benchmark output in docs/
(scripts/readme_numbers.py renders them), its step counts are the schedule's, its install lines name the real
repository (pyproject.toml's [project.urls], the one source) and a ComfyUI user meets install before results."""
from __future__ import annotations

import importlib.util
import re
import sys
import tomllib

import pytest

from conftest import ROOT

from comfyui_l2p.nodes import learn_setup, setups, tooltips
from comfyui_l2p.predictors.schedules.budget import computed_count

README = (ROOT / "README.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _readme_numbers():
    spec = importlib.util.spec_from_file_location("readme_numbers", ROOT / "scripts" / "readme_numbers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("readme_numbers", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return sys.modules["readme_numbers"]


def test_result_tables_are_the_benchmark_output():
    numbers = _readme_numbers()
    assert numbers.problems(README) == []
    assert set(numbers.readme_blocks(README)) == set(numbers.TABLES)


def test_a_changed_number_is_caught():
    numbers = _readme_numbers()
    block = numbers.readme_blocks(README)["results-flux"]
    cell = re.search(r"\| FORA \| (\d+\.\d) ", block).group(1)
    changed = README.replace(f"| FORA | {cell} ", f"| FORA | {float(cell) + 0.1:.1f} ", 1)
    assert any("'results-flux'" in p for p in numbers.problems(changed))
    assert numbers.problems(numbers.rewrite(changed)) == []


def test_a_missing_benchmark_row_is_named(monkeypatch):
    numbers = _readme_numbers()
    monkeypatch.setattr(numbers, "RESULT_ROWS", (("X", "no such variant"),))
    with pytest.raises(numbers.DocsError, match="no such variant"):
        numbers.results_table("benchmark")


@pytest.mark.parametrize("text", [README, tooltips.SPEEDUP], ids=["README", "speedup tooltip"])
def test_quoted_step_counts_are_the_schedules(text):
    """'50 steps at 4.55x / 5.56x / 7.14x compute 11 / 9 / 7 steps' and the like, wherever the README says it."""
    quoted = re.findall(r"(\d+) steps at ([\d./x\s]+?)\s+compute\s+([\d/\s]+?)\s+steps", text)
    for steps, speedups, counts in quoted:
        ratios = [float(s) for s in re.findall(r"[\d.]+", speedups)]
        assert [computed_count(int(steps), r) for r in ratios] == [int(c) for c in re.findall(r"\d+", counts)]
    assert quoted, "no step count quoted: keep this test's pattern in step with the text"
    if text is README:
        assert quoted, "the README no longer quotes a step count: keep this test's pattern in step with it"
        default = re.search(r"at the default `speedup` (\d+),\s+(\d+) of (\d+) steps run", text)
        assert computed_count(int(default.group(3)), float(default.group(1))) == int(default.group(2))


def test_learning_defaults_quoted_are_the_codes():
    assert f"The first {learn_setup.LEARNING_TRAJECTORIES} images teach it" in README
    assert f"until the file holds {learn_setup.TOP_UP_TRAJECTORIES}" in README
    assert f"`warmup_steps` {setups.DEFAULT_L2P_WARMUP}" in README


def test_install_names_the_real_repository_and_registry_id():
    url = PYPROJECT["project"]["urls"]["Repository"]
    assert "<this repository>" not in README and "<" not in url
    assert f"git clone {url} " in README
    github = set(re.findall(r"https://github\.com/[\w.-]+/ComfyUI-L2P\b", README))
    assert github <= {url}, f"README links a repository other than pyproject's {url}: {github - {url}}"
    assert f"comfy node install {PYPROJECT['project']['name']}" in README
    assert "ComfyUI's own" in README or "with the Python that runs ComfyUI" in README


def test_a_comfyui_user_meets_install_and_quick_start_first():
    headings = re.findall(r"(?m)^## (.+)$", README)
    assert headings[:3] == ["Install", "Quick start (FLUX)", "Results on the bundled reference model"]
    developer = headings.index("For developers: the demo and the tests")
    assert headings.index("Troubleshooting") < developer
    first_commands = re.search(r"## For developers.*?```bash\n(.*?)```", README, re.S).group(1).splitlines()
    assert [c.split("&&")[-1].strip() for c in first_commands] == ["python3 -m benchmark --demo",
                                                                   "python3 -m pytest -q"]


def test_templates_the_readme_names_exist():
    sys.path.insert(0, str(ROOT / "scripts"))
    import workflow_catalog

    named = re.findall(r"(?<!\*)\*(\d [^*]+ \+ [^*]+)\*", README)
    assert len(named) >= 3
    for name in named:
        assert any(stem.startswith(name) for stem in workflow_catalog.FILE_STEMS.values()), name


@pytest.mark.parametrize("folder,model", [("benchmark", ""), ("benchmark-qwen", "Qwen-Image: ")])
def test_calibration_times_quoted_are_the_benchmarks(folder, model):
    text = (ROOT / "docs" / folder / "benchmark.md").read_text()
    seconds = re.findall(r"calibrated on (\d+) trajectories in ([\d.]+) s", text)
    assert len(seconds) == 2 and {n for n, _ in seconds} == {"42"}
    readme = " ".join(README.split())
    if model:
        assert f"({model}{seconds[0][1]} s and {seconds[1][1]} s)" in readme
    else:
        assert f"in {seconds[0][1]} s without CFG and {seconds[1][1]} s with CFG" in readme


def test_setup_time_quoted_is_the_benchmarks():
    """'fitting the weights and choosing the schedule take under a second': the setup ms of L2P direct (optimized)."""
    for folder in ("benchmark", "benchmark-qwen"):
        text = (ROOT / "docs" / folder / "benchmark.md").read_text()
        setup_ms = [float(row.split("|")[7]) for row in text.splitlines()  # the cost tables' "setup ms" column
                    if re.match(r"\| L2P direct \(optimized\) \| [\d.]+x \|", row)]
        assert len(setup_ms) == 6 and max(setup_ms) < 1000, (folder, setup_ms)
    assert "choosing the schedule take under a second" in " ".join(README.split())
