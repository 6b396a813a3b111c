"""The predictor file: round trips, every bad-file case, atomic writes, the official weight.txt importer."""
import json
import os
import pickle
import struct

import numpy as np
import pytest
import safetensors.numpy

from comfyui_l2p.predictors.engine.grid import StepGrid
from comfyui_l2p.predictors.files import storage as pfmod
from comfyui_l2p.predictors.files.official import import_official_weight_txt, official_predictor_file
from comfyui_l2p.predictors.files.predictor_file import PredictorFile, PredictorFileError
from comfyui_l2p.predictors.files.storage import load_predictor_file, save_predictor_file

S = 12


def _gram(size: int, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(size, size + 4))
    return a @ a.T


def _lower(size: int, seed: int = 0) -> np.ndarray:
    return np.tril(np.random.default_rng(seed).normal(size=(size, size)))


def full_file(**changes) -> PredictorFile:
    kwargs = dict(
        steps=S, model_family="flux", model_class="Flux", latent_channels=16, sampler="euler", scheduler="simple",
        roles=("cond", "uncond"), cfg_mode="cfg", ridge_lambda=1e-3, fit_mode="direct", created_by="test",
        sigmas=np.linspace(1.0, 0.0, S + 1), gram=_gram(2 * S), sample_count=8, element_count=4096,
        schedule=np.array([0, 1, 4, 8], dtype=np.int64), paper_matrix=_lower(S),
        lesa={"expert0.w": np.ones((3, 4), dtype=np.float32)}, extra={"note": "hello"},
    )
    kwargs.update(changes)
    return PredictorFile(**kwargs)


def minimal_file() -> PredictorFile:
    return PredictorFile(steps=S, model_family="qwen-image", sigmas=np.linspace(1.0, 0.0, S + 1), gram=_gram(S, 1),
                         sample_count=1, element_count=10)


def _same(a: PredictorFile, b: PredictorFile) -> None:
    for name in ("steps", "model_family", "model_class", "latent_channels", "sampler", "scheduler", "roles",
                 "cfg_mode", "ridge_lambda", "fit_mode", "created_by", "sample_count", "element_count", "extra"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("sigmas", "gram", "schedule", "paper_matrix"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.lesa.keys() == b.lesa.keys()
    for k in a.lesa:
        assert a.lesa[k].dtype == np.float32 and np.array_equal(a.lesa[k], b.lesa[k])


# ------------------------------------------------------------------ round trip
@pytest.mark.parametrize("make", [full_file, minimal_file])
def test_round_trip(tmp_path, make):
    pf = make()
    path = tmp_path / "p.safetensors"
    save_predictor_file(path, pf)
    back = load_predictor_file(path, expect_grid=StepGrid.uniform(S), expect_family=pf.model_family.upper())
    _same(pf, back)
    assert back.gram.flags.writeable is False
    assert os.listdir(tmp_path) == ["p.safetensors"]  # no temporary file left


def test_round_trip_of_an_imported_matrix(tmp_path):
    pf = PredictorFile(steps=S, model_family="flux", paper_matrix=_lower(S))
    save_predictor_file(tmp_path / "m.safetensors", pf)
    back = load_predictor_file(tmp_path / "m.safetensors", expect_grid=StepGrid.uniform(S))
    _same(pf, back)
    assert back.gram is None and back.sigmas is None and back.grid() is None and back.ridge_lambda is None


def test_role_blocks_and_sum():
    pf = full_file()
    cond, uncond = pf.role_gram("cond"), pf.role_gram("uncond")
    assert np.array_equal(cond, pf.gram[:S, :S]) and np.array_equal(uncond, pf.gram[S:, S:])
    assert np.array_equal(pf.summed_gram(), cond + uncond)
    with pytest.raises(ValueError, match="not in this file"):
        pf.role_gram("negative")


@pytest.mark.parametrize("bad,match", [
    (dict(gram=None, sample_count=None, element_count=None, paper_matrix=None), "needs a 'gram'"),
    (dict(gram=_gram(S)), r"\[24, 24\]"),
    (dict(sample_count=None), "sample_count"),
    (dict(sample_count=0), ">= 1"),
    (dict(sigmas=None), "sigmas"),
    (dict(sigmas=np.linspace(0.0, 1.0, S + 1)), "decrease"),
    (dict(paper_matrix=_lower(S) + np.triu(np.ones((S, S)), 1)), "lower-triangular"),
    (dict(schedule=np.array([3, 1], dtype=np.int64)), "strictly increasing"),
    (dict(roles="cond,cond"), "distinct"),
    (dict(lesa={"x": np.ones(2, dtype=np.float64)}), "float32"),
    (dict(extra={"steps": "3"}), "extra metadata"),
    (dict(ridge_lambda=-1.0), "ridge_lambda"),
])
def test_construction_validates_combinations(bad, match):
    with pytest.raises(ValueError, match=match):
        full_file(**bad)


# ------------------------------------------------------------------ bad files
def _good_bytes() -> bytes:
    pf = full_file()
    return safetensors.numpy.save(pf.tensors(), metadata=pf.metadata())


def _write_tensors(path, tensors, **meta_changes):
    meta = full_file().metadata()
    meta.update(meta_changes)
    meta = {k: v for k, v in meta.items() if v is not None}
    safetensors.numpy.save_file(tensors, str(path), metadata=meta)


def _bad_files(tmp_path):
    good = full_file().tensors()
    yield "missing.safetensors", None, "does not exist"
    yield "truncated.safetensors", _good_bytes()[:-100], "truncated"
    yield "pickle.safetensors", pickle.dumps({"gram": [1.0]}), "pickle"
    yield "checkpoint.safetensors", b"PK\x03\x04" + bytes(200), "ZIP"
    yield "random.safetensors", np.random.default_rng(0).bytes(300), "not"
    yield "empty.safetensors", b"", "bytes"
    yield "weight.safetensors", b"[[1.0]]", "weight.txt"
    yield "version.safetensors", ("meta", dict(format_version="7")), "format version"
    yield "noversion.safetensors", ("meta", dict(format_version=None)), "format_version"
    yield "nosteps.safetensors", ("meta", dict(steps=None)), "missing"
    yield "nan.safetensors", ("tensors", dict(good, gram=np.where(np.eye(2 * S) > 0, np.nan, good["gram"]))), "NaN"
    yield "inf.safetensors", ("tensors", dict(good, sigmas=np.full(S + 1, np.inf))), "NaN/inf"
    yield "shape.safetensors", ("tensors", dict(good, gram=_gram(2 * S + 1))), r"\[24, 24\]"
    yield "dtype.safetensors", ("tensors", dict(good, gram=good["gram"].astype(np.float32))), "float64"
    yield "unknown.safetensors", ("tensors", dict(good, weights=np.ones(3))), "unknown"
    yield "asym.safetensors", ("tensors", dict(good, gram=good["gram"] + np.triu(np.ones((2 * S, 2 * S)), 1))), \
        "symmetric"


def test_every_bad_file_raises_predictor_file_error_naming_the_file(tmp_path):
    count = 0
    for name, content, match in _bad_files(tmp_path):
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, tuple) and content[0] == "meta":
            _write_tensors(path, full_file().tensors(), **content[1])
        elif isinstance(content, tuple):
            _write_tensors(path, content[1])
        with pytest.raises(PredictorFileError, match=match) as info:
            load_predictor_file(path)
        assert name in str(info.value), str(info.value)
        assert isinstance(info.value, ValueError)
        count += 1
    assert count == 16


def test_pickle_is_never_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.makedirs, (str(tmp_path / "pwned"),))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(PredictorFileError, match="refused"):
        load_predictor_file(path)
    assert not (tmp_path / "pwned").exists()


def test_grid_and_family_mismatches(tmp_path):
    path = tmp_path / "flux50.safetensors"
    save_predictor_file(path, full_file())
    with pytest.raises(PredictorFileError, match=r"12 steps, the run has 20.*[Cc]alibrate at this grid.*resampl") as e:
        load_predictor_file(path, expect_grid=StepGrid.uniform(20))
    assert "flux50.safetensors" in str(e.value)
    shifted = StepGrid(tuple(np.linspace(1.0, 0.0, S + 1) ** 2))
    with pytest.raises(PredictorFileError, match="sigma grid differs"):
        load_predictor_file(path, expect_grid=shifted)
    assert load_predictor_file(path, expect_grid=shifted, allow_grid_mismatch=True).steps == S
    assert load_predictor_file(path, expect_grid=StepGrid.uniform(20), allow_grid_mismatch=True).steps == S
    with pytest.raises(PredictorFileError, match="family 'flux', the model is 'wan'"):
        load_predictor_file(path, expect_family="wan")


# ------------------------------------------------------------------ atomic write
def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.safetensors"
    save_predictor_file(path, minimal_file())
    before = path.read_bytes()

    def half_then_fail(handle, data):
        handle.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(pfmod, "_write_bytes", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_predictor_file(path, full_file())
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.safetensors"]
    _same(load_predictor_file(path), minimal_file())


def test_failed_fsync_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.safetensors"
    save_predictor_file(path, minimal_file())
    before = path.read_bytes()

    def fail(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(pfmod.os, "fsync", fail)
    with pytest.raises(OSError, match="I/O error"):
        save_predictor_file(path, full_file())
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["keep.safetensors"]


# ------------------------------------------------------------------ official weight.txt
def _weight_txt(tmp_path, rows, name="weight.txt") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(rows) if not isinstance(rows, str) else rows)
    return str(path)


def test_official_weight_txt_is_imported(tmp_path):
    matrix = np.tril(np.random.default_rng(2).normal(size=(50, 50)).astype(np.float32)).astype(np.float64)
    path = _weight_txt(tmp_path, matrix.tolist())
    got = import_official_weight_txt(path)
    assert got.dtype == np.float64 and got.shape == (50, 50) and np.array_equal(got, matrix)
    pf = official_predictor_file(path)
    assert (pf.model_family, pf.steps, pf.gram, pf.sigmas) == ("flux", 50, None, None)
    assert np.array_equal(pf.paper_matrix, matrix)
    via_loader = load_predictor_file(path, expect_grid=StepGrid.uniform(50), expect_family="flux")
    assert np.array_equal(via_loader.paper_matrix, matrix)
    with pytest.raises(PredictorFileError, match="cannot be resampled"):
        load_predictor_file(path, expect_grid=StepGrid.uniform(28), allow_grid_mismatch=True)
    save_predictor_file(tmp_path / "official.safetensors", pf)
    _same(load_predictor_file(tmp_path / "official.safetensors"), pf)


@pytest.mark.parametrize("content,match", [
    ([[1.0, 0.0], [1.0]], "square"),
    ([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]], "square"),
    ([[1.0, 0.5], [1.0, 1.0]], "lower-triangular"),
    ("[[NaN, 0.0], [1.0, 1.0]]", "NaN"),
    ("[[1e999, 0.0], [1.0, 1.0]]", "NaN/inf"),
    ("[[1.0, 0.0], [1.0, 1.0]", "not JSON"),
    ("__import__('os').system('echo hi')", "not JSON"),
    ([[True, 0], [1, 1]], "numbers only"),
    ({"w": 1}, "list"),
    ([], "list"),
])
def test_official_weight_txt_rejects_bad_content(tmp_path, content, match):
    path = _weight_txt(tmp_path, content, name="bad_weight.txt")
    with pytest.raises(PredictorFileError, match=match) as info:
        import_official_weight_txt(path)
    assert "bad_weight.txt" in str(info.value)


def test_official_weight_txt_missing_or_binary(tmp_path):
    with pytest.raises(PredictorFileError, match="does not exist"):
        import_official_weight_txt(tmp_path / "nope.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00\x80" * 10)
    with pytest.raises(PredictorFileError, match="binary"):
        import_official_weight_txt(tmp_path / "bin.txt")


def test_header_length_larger_than_file_is_refused(tmp_path):
    path = tmp_path / "liar.safetensors"
    path.write_bytes(struct.pack("<Q", 10**6) + b'{"a": 1}')
    with pytest.raises(PredictorFileError, match="liar.safetensors.*truncated"):
        load_predictor_file(path)


def test_a_header_length_that_starts_like_pickle_magic_is_still_safetensors(tmp_path):
    """A header of 640..767 bytes begins 0x80 0x02, pickle's protocol-2 magic: it must load, not be refused."""
    from comfyui_l2p.predictors.files.predictor_file import PredictorFile
    from comfyui_l2p.predictors.files.storage import load_predictor_file, save_predictor_file

    for pad in range(0, 400, 7):
        pf = PredictorFile(steps=2, model_family="flux", paper_matrix=np.eye(2), extra={"pad": "x" * pad})
        path = tmp_path / f"p{pad}.safetensors"
        save_predictor_file(path, pf)
        data = path.read_bytes()
        if data[0] == 0x80 and data[1] == 0x02:
            assert load_predictor_file(path).extra["pad"] == "x" * pad
            return
    raise AssertionError("no padding produced a header length starting with 0x80 0x02")
