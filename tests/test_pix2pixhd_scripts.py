"""pix2pixHD's own scripts/*.sh (NVIDIA/pix2pixHD, all 13), each command line as written there, run through synth
on tiny data: every line trains, tests or encodes, or stops with one clear line where it needs GPUs.

How a line runs:

- ``python SCRIPT.py FLAGS`` calls the synth command that stands for pix2pixHD's script (``COMMANDS``: train.py and
  test.py are the repository's own, encode_features.py is synth-encode-features, precompute_feature_maps.py is
  synth-precompute-features) in this process, as ``main(argv)``, with the working directory set to the script's
  own workspace. That workspace holds pix2pixHD's default paths: the demo data (``demo_root``, 32x32 scenes,
  labels 0..4 under the default ``--label_nc 35``) copied to ``datasets/cityscapes/``, and ``checkpoints/`` and
  ``results/`` are the defaults too, so the scripts' relative ``--load_pretrain checkpoints/label2city_512p/``
  works as written.
- Tiny sizes are appended after the script's own flags, where the script has ``$@`` or else at the end, as a user
  appends them; argparse's last value wins, so ``--fineSize 1024`` becomes 32 and ``--niter 50`` becomes 1. The
  script's ``--ngf N`` is followed by ``--ngf N/8`` (64 where it has none): the 1024p scripts halve the 512p
  ngf for the local enhancer, whose global part must then fit the 512p run's generator.
- ``python -m torch.distributed.launch train.py FLAGS`` runs train.py with what the launcher of torch >= 2 gives
  one process: ``--local-rank=0`` before the script's flags and the LOCAL_RANK / RANK / WORLD_SIZE / MASTER_*
  environment.
- Scripts chain as in pix2pixHD (``NEEDS``): a script's workspace starts as a copy of the workspace of the script it
  needs, after that one ran (each runs once per session); so the 12G and 24G variants both start from the same
  512p run and do not meet each other's checkpoints.
- Lines that need GPUs (``--fp16`` on the CPU, ``--gpu_ids 0,...,7``) stop with exit status 2, one ``error:`` line
  naming the alternative (``--amp bf16``, ``torchrun``), and write nothing.
- test_1024p_feat.sh's ``---netG`` (a typo in pix2pixHD itself, refused by its argparse too) stops with
  ``error: unknown flag ---netG (did you mean --netG?)``; the line then runs corrected, as ``--netG``.
"""

from __future__ import annotations

import io
import shlex
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from synth.commands.encode_features import main as encode_features_main
from synth.commands.precompute_features import main as precompute_features_main
from synth.commands.test import main as synth_test
from synth.commands.train import main as train_main
from synth.data.feature_maps import read_feature_map

pytestmark = pytest.mark.slow

#: pix2pixHD's scripts/*.sh: each script's command lines exactly as written there (comment lines left out).
SCRIPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("train_512p.sh", ("python train.py --name label2city_512p",)),
    ("train_512p_feat.sh", ("python train.py --name label2city_512p_feat --instance_feat",)),
    ("train_512p_fp16.sh", (" python -m torch.distributed.launch train.py --name label2city_512p --fp16",)),
    ("train_512p_multigpu.sh", (
        "python train.py --name label2city_512p --batchSize 8 --gpu_ids 0,1,2,3,4,5,6,7",)),
    ("train_512p_fp16_multigpu.sh", (
        "python -m torch.distributed.launch train.py --name label2city_512p --batchSize 8 "
        "--gpu_ids 0,1,2,3,4,5,6,7 --fp16",)),
    ("train_1024p_12G.sh", (
        "python train.py --name label2city_1024p --netG local --ngf 32 --num_D 3 --load_pretrain "
        "checkpoints/label2city_512p/ --niter_fix_global 20 --resize_or_crop crop --fineSize 1024",)),
    ("train_1024p_24G.sh", (
        "python train.py --name label2city_1024p --netG local --ngf 32 --num_D 3 --load_pretrain "
        "checkpoints/label2city_512p/ --niter 50 --niter_decay 50 --niter_fix_global 10 --resize_or_crop none",)),
    ("train_1024p_feat_12G.sh", (
        "python precompute_feature_maps.py --name label2city_512p_feat;",
        "python train.py --name label2city_1024p_feat --netG local --ngf 32 --num_D 3 --load_pretrain "
        "checkpoints/label2city_512p_feat/ --niter_fix_global 20 --resize_or_crop crop --fineSize 896 "
        "--instance_feat --load_features")),
    ("train_1024p_feat_24G.sh", (
        "python precompute_feature_maps.py --name label2city_512p_feat;",
        "python train.py --name label2city_1024p_feat --netG local --ngf 32 --num_D 3 --load_pretrain "
        "checkpoints/label2city_512p_feat/ --niter 50 --niter_decay 50 --niter_fix_global 10 --resize_or_crop none "
        "--instance_feat --load_features")),
    ("test_512p.sh", ("python test.py --name label2city_512p",)),
    ("test_512p_feat.sh", (
        "python encode_features.py --name label2city_512p_feat;",
        "python test.py --name label2city_512p_feat --instance_feat")),
    ("test_1024p.sh", ("python test.py --name label2city_1024p --netG local --ngf 32 --resize_or_crop none $@",)),
    ("test_1024p_feat.sh", (
        "python encode_features.py --name label2city_1024p_feat --netG local --ngf 32 --resize_or_crop none;",
        "python test.py --name label2city_1024p_feat ---netG local --ngf 32 --resize_or_crop none --instance_feat")),
)

#: pix2pixHD's script name -> synth's command (``main(argv) -> exit status``).
COMMANDS = {
    "train.py": train_main,
    "test.py": synth_test,
    "encode_features.py": encode_features_main,
    "precompute_feature_maps.py": precompute_features_main,
}

#: Which script's runs a script starts from (pix2pixHD's README order: 512p, then 1024p, then testing).
NEEDS = {
    "train_1024p_12G.sh": "train_512p.sh",
    "train_1024p_24G.sh": "train_512p.sh",
    "train_1024p_feat_12G.sh": "train_512p_feat.sh",
    "train_1024p_feat_24G.sh": "train_512p_feat.sh",
    "test_512p.sh": "train_512p.sh",
    "test_512p_feat.sh": "train_512p_feat.sh",
    "test_1024p.sh": "train_1024p_24G.sh",
    "test_1024p_feat.sh": "train_1024p_feat_24G.sh",
}

#: Scripts that need GPUs: the words synth's one line must say (what is wrong, and the alternative).
REFUSED = {
    "train_512p_fp16.sh": ("--fp16 needs a CUDA device", "on the CPU use --amp bf16"),
    "train_512p_multigpu.sh": (
        "--gpu_ids 0,1,2,3,4,5,6,7: pix2pixHD used DataParallel",
        "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 torchrun --nproc_per_node 8 train.py --name label2city_512p "
        "--batchSize 8 --ngf 8",
    ),
    "train_512p_fp16_multigpu.sh": ("--gpu_ids 0,1,2,3,4,5,6,7", "torchrun --nproc_per_node 8 train.py"),
}

#: What ``python -m torch.distributed.launch`` (one process, torch >= 2) sets for the script.
LAUNCHER_ENV = {"LOCAL_RANK": "0", "RANK": "0", "GROUP_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}

#: Appended to every line: a tiny network on 32x32 scenes, 2 samples, on the CPU (``--ngf`` is added per line).
TINY = ("--n_downsample_global 2 --n_blocks_global 1 --n_blocks_local 1 --ndf 8 --n_layers_D 2 --nef 4 "
        "--n_downsample_E 2 --n_clusters 2 --loadSize 32 --fineSize 32 --max_dataset_size 2 --nThreads 0 "
        "--device cpu --no_progress").split()
#: Appended per command after TINY: one epoch without the VGG loss (no weights here) or wandb; two test images.
PER_COMMAND = {
    "train.py": "--niter 1 --niter_decay 0 --no_vgg_loss --no_wandb --print_freq 2 --display_freq 2".split(),
    "test.py": ["--how_many", "2"],
    "encode_features.py": [],
    "precompute_feature_maps.py": [],
}
SAMPLES = 2  # --max_dataset_size and --how_many


@dataclass
class LineRun:
    """One command line run in a workspace: what was typed, the argv synth got, exit status, output, and the
    files it wrote (new or changed, relative to the workspace)."""

    line: str
    script: str
    argv: list[str]
    flags: list[str]
    rc: int
    out: str
    err: str
    made: set[str] = field(default_factory=set)

    def flag(self, name: str) -> str:
        """The last value of ``--name`` in the argv (the script's own, or an appended one)."""
        return self.argv[len(self.argv) - 1 - self.argv[::-1].index(f"--{name}") + 1]


def split_line(line: str) -> tuple[bool, str, list[str]]:
    """(run by torch.distributed.launch, pix2pixHD script name, its flags) of a script line."""
    tokens = shlex.split(line.strip().rstrip(";"))
    assert tokens[0] == "python", line
    launched = tokens[1:3] == ["-m", "torch.distributed.launch"]
    tokens = tokens[3:] if launched else tokens[1:]
    return launched, tokens[0], tokens[1:]


def with_tiny_sizes(script: str, flags: list[str]) -> list[str]:
    """The script's flags with the tiny sizes in place of ``$@`` (else after them)."""
    ngf = int(flags[flags.index("--ngf") + 1]) if "--ngf" in flags else 64
    tiny = ["--ngf", str(ngf // 8), *TINY, *PER_COMMAND[script]]
    if "$@" in flags:
        at = flags.index("$@")
        return flags[:at] + tiny + flags[at + 1 :]
    return flags + tiny


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: relative path -> (size, mtime in ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file()}


def run_line(workspace: Path, line: str) -> LineRun:
    """Run one script line in ``workspace`` as pix2pixHD's user would, with the tiny sizes appended."""
    launched, script, flags = split_line(line)
    argv = with_tiny_sizes(script, flags)
    if launched:
        argv = ["--local-rank=0", *argv]
    before = snapshot(workspace)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(err):
        patch.chdir(workspace)
        for key, value in (LAUNCHER_ENV.items() if launched else ()):
            patch.setenv(key, value)
        rc = COMMANDS[script](argv)
    after = snapshot(workspace)
    made = {path for path, stat in after.items() if before.get(path) != stat}
    return LineRun(line, script, argv, flags, rc, out.getvalue(), err.getvalue(), made)


class ScriptRuns:
    """Each script run once, in its own workspace started from the workspace of the script it needs."""

    def __init__(self, root: Path, data: Path):
        self.root, self.data, self.done = root, data, {}

    def run(self, script: str) -> tuple[Path, list[LineRun]]:
        """(workspace, the runs of its lines); a ``---flag`` line runs as written, then corrected."""
        if script not in self.done:
            workspace = self.root / script.removesuffix(".sh")
            if script in NEEDS:
                shutil.copytree(self.run(NEEDS[script])[0], workspace)
            else:
                shutil.copytree(self.data, workspace / "datasets" / "cityscapes")
            runs = []
            for line in dict(SCRIPTS)[script]:
                runs.append(run_line(workspace, line))
                if " ---" in line:
                    runs.append(run_line(workspace, line.replace(" ---", " --")))
            self.done[script] = workspace, runs
        return self.done[script]


@pytest.fixture(scope="module")
def script_runs(demo_root, tmp_path_factory) -> ScriptRuns:
    return ScriptRuns(tmp_path_factory.mktemp("pix2pixhd_scripts"), demo_root)


def test_the_table_holds_pix2pixhds_13_scripts():
    names = [name for name, _ in SCRIPTS]
    assert len(names) == len(set(names)) == 13
    assert set(NEEDS) | set(NEEDS.values()) | set(REFUSED) <= set(names)
    assert {split_line(line)[1] for _, lines in SCRIPTS for line in lines} == set(COMMANDS)


@pytest.mark.parametrize("script", [name for name, _ in SCRIPTS])
def test_script_runs_on_tiny_data_or_stops_with_one_line(script_runs, script):
    workspace, runs = script_runs.run(script)
    if script in REFUSED:
        (run,) = runs
        assert run.rc == 2 and run.out == "", run.err
        assert run.err.count("\n") == 1 and run.err.startswith("error: "), run.err
        for words in REFUSED[script]:
            assert words in run.err
        assert run.made == set() and not (workspace / "checkpoints").exists()
        return
    for run in runs:
        if " ---" in run.line:  # pix2pixHD's typo: one line, nothing written; the corrected line runs next
            assert run.rc == 2 and run.err == "error: unknown flag ---netG (did you mean --netG?)\n"
            assert run.made == set()
            continue
        assert run.rc == 0, f"{run.line}: {run.err}"
        CHECKS[run.script](workspace, run)


def check_train(workspace: Path, run: LineRun) -> None:
    """A run folder with checkpoints, log and page, whose options are the script's flags but for those the tiny
    sizes override; a run from --load_pretrain holds the 512p generator, untouched (--niter_fix_global)."""
    name = run.flag("name")
    folder = f"checkpoints/{name}"
    assert {f"{folder}/{f}" for f in ("latest.pt", "epoch_001.pt", "opt.yaml", "loss_log.txt", "web/index.html")} \
        <= run.made
    saved = yaml.safe_load((workspace / folder / "opt.yaml").read_text())
    appended = set(run.argv[len(run.flags):])
    for at, token in enumerate(run.flags):
        value = run.flags[at + 1] if at + 1 < len(run.flags) else "--"
        key = token[2:]
        if not token.startswith("--") or token in appended:
            continue
        assert saved[key] is True if value.startswith("--") else str(saved[key]) == value, (key, saved[key])
    assert saved["fineSize"] == 32 and saved["niter"] == 1 and saved["niter_decay"] == 0
    if "--load_pretrain" in run.flags:
        assert saved["netG"] == "local" and saved["niter_fix_global"] >= 10 and saved["num_D"] == 3
        trained = torch.load(workspace / folder / "latest.pt", weights_only=True)["nets"]["G"]
        pretrained = torch.load(workspace / run.flag("load_pretrain") / "latest.pt", weights_only=True)["nets"]["G"]
        shared = [key for key in pretrained if not key.startswith("head.")]
        assert shared and all(torch.equal(trained[f"global_net.{key}"], pretrained[key]) for key in shared)


def check_test(workspace: Path, run: LineRun) -> None:
    """The results page with the synthesized images of two test scenes."""
    out = f"results/{run.flag('name')}/test_latest"
    fakes = sorted(p for p in run.made if p.startswith(f"{out}/images/") and p.endswith("_synthesized_image.png"))
    assert f"{out}/index.html" in run.made and len(fakes) == SAMPLES
    page = (workspace / out / "index.html").read_text()
    assert all(Path(p).name in page for p in fakes)
    from PIL import Image

    image = np.asarray(Image.open(workspace / fakes[0]))
    assert image.shape == (32, 32, 3) and image.std() > 0


def check_encode_features(workspace: Path, run: LineRun) -> None:
    """The run's cluster file (2 clusters per class), named as test.py looks for it."""
    path = f"checkpoints/{run.flag('name')}/features_clustered_002.npz"
    assert run.made == {path} and f"wrote {path}" in run.out


def check_precompute(workspace: Path, run: LineRun) -> None:
    """One feature map per training sample used, in DATAROOT/train_feat, each holding several instances' features."""
    maps = sorted(p for p in run.made if p.startswith("datasets/cityscapes/train_feat/"))
    assert len(maps) == SAMPLES and run.made == set(maps)
    feat = read_feature_map(workspace / maps[0], 3, (32, 32))  # (H, W, feat_num)
    assert len(np.unique(feat.reshape(-1, 3), axis=0)) > 1


CHECKS = {"train.py": check_train, "test.py": check_test, "encode_features.py": check_encode_features,
          "precompute_feature_maps.py": check_precompute}
