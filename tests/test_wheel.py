"""A built wheel installs only ``synth`` and works from a folder that holds pix2pixHD-style ``data/``, ``models/``,
``options/`` folders and a ``models.py`` (the names that used to collide)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import tiny_flags
from tests.test_api import doc_example, with_paths

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("synth", "models", "data", "options", "configs", "setup.cfg", "pyproject.toml", "README.md")

SCRIPT = """
import synth.trainer
from synth.editing import InstanceEditor
from synth.options import parse_test_options
import synth, synth.models, synth.data
assert 'site-packages' in synth.__file__ and 'site-packages' in synth.models.__file__, synth.models.__file__
print('imports ok', synth.data.__file__)
"""


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> tuple[Path, Path]:
    """(venv bin folder, the wheel): the wheel built from a copy of the sources, installed into a fresh venv that
    reuses this interpreter's dependencies."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in SOURCES:
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, src / name, **(
            {"ignore": ignore} if (REPO / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp / "dist").glob("synth-*.whl"))
    venv.create(tmp / "venv", system_site_packages=True, with_pip=False)
    bin_dir = tmp / "venv" / "bin"
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return bin_dir, wheel


def test_the_wheel_holds_one_top_level_package_and_the_configs(wheel_env):
    _, wheel = wheel_env
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"synth"}
    assert "synth/configs/demo.yaml" in names and "synth/models/networks/vgg.py" in names


@pytest.mark.slow
def test_installed_wheel_trains_and_tests_beside_colliding_folders(wheel_env, demo_root, feature_run, tmp_path):
    bin_dir, _ = wheel_env
    work = tmp_path / "project"
    for folder in ("data", "models", "options"):
        (work / folder).mkdir(parents=True)
        (work / folder / "__init__.py").write_text("raise ImportError('the user project, not synth')\n")
    (work / "models.py").write_text("raise ImportError('the user models.py, not synth')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = lambda *cmd: subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)  # noqa: E731

    (work / "use_synth.py").write_text(SCRIPT)
    result = run(str(bin_dir / "python"), "use_synth.py")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "imports ok" in result.stdout

    # docs/api.md's example on a feature run (the editor's kind), from the installed wheel
    label_png = feature_run["dataroot"] / "test_label" / "demo_00000.png"
    (work / "api_example.py").write_text(with_paths(doc_example(), feature_run["name"], feature_run["checkpoints"],
                                                    label_png))
    result = run(str(bin_dir / "python"), "api_example.py")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{feature_run['name']} label_nc 5 -> (64, 64, 3) uint8" in result.stdout

    flags = tiny_flags(demo_root, tmp_path / "ck", "wheel")
    result = run(str(bin_dir / "synth-train"), *flags, "--max_iters", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    result = run(str(bin_dir / "synth-test"), "--name", "wheel", "--checkpoints_dir", str(tmp_path / "ck"),
                 "--dataroot", str(demo_root), "--results_dir", str(tmp_path / "res"), "--device", "cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "res" / "wheel" / "test_latest" / "index.html").is_file()
    example = with_paths(doc_example(), "wheel", tmp_path / "ck", demo_root / "test_label" / "demo_00000.png")
    (work / "api_example.py").write_text(example)
    result = run(str(bin_dir / "python"), "api_example.py")
    assert result.returncode == 0, result.stderr[-2000:]  # docs/api.md's example, from the installed wheel
    assert "wheel label_nc 5 -> (32, 32, 3) uint8" in result.stdout and (work / "synthesized.png").is_file()
    result = run(str(bin_dir / "synth-demo"), "--help")
    assert result.returncode == 0 and "synth-demo" in result.stdout, result.stderr[-2000:]
    result = run(str(bin_dir / "synth-demo"), "--n_train", "4", "--max_iters", "2", "--no_wandb", "--device", "cpu")
    assert result.returncode == 0, result.stderr[-2000:]  # demo.yaml read from the installed package data
    assert (work / "results" / "demo" / "test_latest" / "index.html").is_file()
