"""ONNX export: onnxruntime reproduces the PyTorch generator (with and without instance maps, any batch and size),
the docs' numpy recipe builds the same input as ``encode_input``, and ``synth-export-onnx`` end to end."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from synth.commands.export_onnx import main  # noqa: E402
from synth.core.errors import OptionError  # noqa: E402
from synth.data.preprocess import instance_boundaries, one_hot  # noqa: E402
from synth.export import export_generator_onnx  # noqa: E402
from synth.inference import load_generator  # noqa: E402
from synth.options import parse_test_options, parse_train_options  # noqa: E402
from synth.trainer import Trainer  # noqa: E402
from tests.conftest import tiny_flags  # noqa: E402

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[1] / "docs" / "export.md"
RUNS = {"inst": [], "noinst": ["--no_instance"]}
SIZES = [(32, 32), (64, 48)]  # multiples of 4: tiny_flags has --n_downsample_global 2


@pytest.fixture(scope="module")
def run_dir(demo_root, tmp_path_factory) -> Path:
    """Two tiny runs trained for 2 iterations: ``inst`` (label + instance boundary input) and ``noinst``."""
    root = tmp_path_factory.mktemp("export_runs")
    for name, extra in RUNS.items():
        Trainer(parse_train_options(tiny_flags(demo_root, root, name) + ["--max_iters", "2"] + extra)).train()
    return root


@pytest.fixture(scope="module")
def make_semantics():
    """The numpy recipe of docs/export.md, executed as written."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    source = next(b for b in blocks if "def make_semantics" in b)
    namespace: dict = {}
    exec(source, namespace)
    return namespace["make_semantics"]


def load(run_dir: Path, name: str):
    return load_generator(parse_test_options(["--name", name, "--checkpoints_dir", str(run_dir), "--device", "cpu"]))


def random_maps(rng: np.random.Generator, batch: int, height: int, width: int, label_nc: int):
    """Blocky label and instance maps (so there are real boundaries), [batch, H, W] int64 each."""
    label = rng.integers(0, label_nc, size=(batch, height // 4, width // 4)).repeat(4, 1).repeat(4, 2)
    inst = rng.integers(0, 3, size=(batch, height // 8, width // 8)).repeat(8, 1).repeat(8, 2)
    return label, inst[:, :height, :width] * 1000 + label


def session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", list(RUNS))
def test_onnxruntime_matches_pytorch(run_dir, name, make_semantics, tmp_path):
    model = load(run_dir, name)
    path = export_generator_onnx(model, tmp_path / "g.onnx", 32, 32)
    onnx.checker.check_model(str(path), full_check=True)
    sess = session(path)
    assert [i.name for i in sess.get_inputs()] == ["semantics"]
    assert [o.name for o in sess.get_outputs()] == ["image"]
    assert sess.get_inputs()[0].shape == ["batch", 6 if name == "inst" else 5, "height", "width"]
    rng = np.random.default_rng(0)
    for height, width in SIZES:
        label, inst = random_maps(rng, 2, height, width, model.opt.label_nc)
        inst_maps = inst if name == "inst" else [None, None]
        x = np.concatenate([make_semantics(lab, ins, label_nc=5) for lab, ins in zip(label, inst_maps, strict=True)])
        # the documented recipe is exactly what the model builds from a dataset batch
        batch = {"label": torch.from_numpy(label[:, None]), "inst": torch.from_numpy(inst[:, None])}
        assert np.array_equal(x, model.encode_input(batch)[0].numpy())
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        (got,) = sess.run(None, {"semantics": x})
        assert got.shape == (2, 3, height, width) == expected.shape
        assert np.abs(got - expected).max() < 1e-4
        assert np.abs(got).max() <= 1.0


def test_docs_recipe_handles_dont_care(make_semantics):
    label = np.array([[0, 255], [2, 1]])
    x = make_semantics(label, None, label_nc=3, dontcare=True)
    expected = one_hot(torch.tensor([[[[0, 3], [2, 1]]]]), 4).numpy()
    assert x.dtype == np.float32 and np.array_equal(x, expected)
    inst = np.array([[5, 5], [5, 7]])
    edges = make_semantics(label, inst, label_nc=3, dontcare=True)[:, -1:]
    assert np.array_equal(edges, instance_boundaries(torch.from_numpy(inst)[None, None]).numpy())


def test_static_export_has_fixed_shapes(run_dir, tmp_path):
    model = load(run_dir, "inst")
    path = export_generator_onnx(model, tmp_path / "s.onnx", 32, 48, dynamic=False, batch_size=2)
    sess = session(path)
    assert sess.get_inputs()[0].shape == [2, 6, 32, 48]
    assert sess.get_outputs()[0].shape == [2, 3, 32, 48]
    x = np.random.default_rng(1).random((2, 6, 32, 48), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.abs(sess.run(None, {"semantics": x})[0] - expected).max() < 1e-4
    assert sess.get_modelmeta().custom_metadata_map["size_multiple"] == "4"


def test_export_rejects_sizes_off_the_stride(run_dir, tmp_path):
    with pytest.raises(OptionError, match="multiple of 4"):
        export_generator_onnx(load(run_dir, "inst"), tmp_path / "bad.onnx", 30, 32)
    assert not (tmp_path / "bad.onnx").exists()


def test_dynamo_exporter(run_dir, tmp_path):
    pytest.importorskip("onnxscript")
    model = load(run_dir, "noinst")
    path = export_generator_onnx(model, tmp_path / "d.onnx", 32, 32, opset=18, dynamo=True)
    sess = session(path)
    assert sess.get_inputs()[0].shape == ["batch", 5, "height", "width"]
    x = np.random.default_rng(2).random((2, 5, 64, 48), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.abs(sess.run(None, {"semantics": x})[0] - expected).max() < 1e-4


def test_cli_end_to_end(run_dir, capsys):
    code = main(["--name", "inst", "--checkpoints_dir", str(run_dir)])
    out = capsys.readouterr()
    assert code == 0, out.err
    path = run_dir / "inst" / "generator_latest.onnx"
    assert path.is_file() and str(path) in out.out
    assert "semantics  float32 [batch, 6, height, width]" in out.out
    assert "image  float32 [batch, 3, height, width]" in out.out
    assert "5 one-hot labels + 1 instance boundary" in out.out


def test_cli_output_flag_and_static(run_dir, tmp_path, capsys):
    target = tmp_path / "out" / "g.onnx"
    code = main(
        [
            "--name",
            "noinst",
            "--checkpoints_dir",
            str(run_dir),
            "--output",
            str(target),
            "--static",
            "--height",
            "16",
            "--width",
            "24",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert target.is_file() and "[1, 5, 16, 24]" in out.out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "checkpoint not found"),
        (["--static"], "--static needs --height and --width"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, extra, message):
    code = main(["--name", "missing", "--checkpoints_dir", str(tmp_path)] + extra)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and message in err


def test_ecgan_exports_its_final_image(demo_root, tmp_path):
    """ECGAN's generator (edge branch, attention transfer, semantic-preserving module) exports I'' alone."""
    flags = tiny_flags(demo_root, tmp_path, "ecgan") + ["--model", "ecgan", "--ngf_label", "4", "--n_blocks_label",
                                                        "1", "--contrast_dim", "8", "--max_iters", "1"]
    Trainer(parse_train_options(flags)).train()
    model = load(tmp_path, "ecgan")
    path = export_generator_onnx(model, tmp_path / "ecgan.onnx", 32, 32)
    rng = np.random.default_rng(1)
    label, inst = random_maps(rng, 2, 32, 48, model.opt.label_nc)
    x = model.encode_input({"label": torch.from_numpy(label[:, None]), "inst": torch.from_numpy(inst[:, None])})[0]
    with torch.no_grad():
        expected = model(x).numpy()
    (got,) = session(path).run(None, {"semantics": x.numpy()})
    assert got.shape == expected.shape == (2, 3, 32, 48)
    assert np.abs(got - expected).max() < 1e-4
