"""synth-import-pix2pixhd on a pix2pixHD feature run: E (pix2pixHD's Encoder key names) and its
features_clustered_NNN.npy (np.save of a dict: a pickle) become a synth run that synthesizes with its clusters;
a pickle asking for anything but numpy arrays is refused and nothing of it runs."""

import io
import os
import pickle

import numpy as np
import pytest
import torch

from synth.checkpoint import load_checkpoint
from synth.commands.import_pix2pixhd import main as import_main
from synth.core.errors import CheckpointError
from synth.features import FeatureClusters
from synth.models.pix2pixhd_import import read_pix2pixhd_clusters
from tests.test_import_command import ARCH
from tests.test_pix2pixhd_import import RefGlobal, randomise

FEAT = ["--instance_feat", "--nef", "4", "--n_downsample_E", "2"]
CENTERS = {
    0: np.array([[0.1, 0.2, 0.3], [-0.5, 0.0, 0.5], [0.9, -0.9, 0.0]]),
    2: np.array([[0.25, 0.5, -0.75], [-1.0, 1.0, 0.125]]),
}


def pix2pixhd_feature_run(folder):
    """G (5 labels + boundary + 3 feature channels in), pix2pixHD's Encoder (its global layers without residual
    blocks, ``model.N`` keys) and the clusters file as encode_features.py writes it."""
    folder.mkdir()
    generator = randomise(RefGlobal(9, 3, 4, 2, 1, "instance"))
    encoder = randomise(RefGlobal(3, 3, 4, 2, 0, "instance"))
    torch.save(generator.state_dict(), folder / "latest_net_G.pth")
    torch.save(encoder.state_dict(), folder / "latest_net_E.pth")
    np.save(folder / "features_clustered_010.npy", CENTERS, allow_pickle=True)
    return generator, encoder


def test_encoder_and_clusters_are_imported(tmp_path, capsys):
    source = tmp_path / "label2city_512p_feat"
    _, encoder = pix2pixhd_feature_run(source)
    assert {"model.1.weight", "model.4.weight", "model.10.weight", "model.17.bias"} <= set(encoder.state_dict())
    flags = ["--pix2pixhd_dir", str(source), "--name", "imp", "--checkpoints_dir", str(tmp_path), *ARCH, *FEAT]
    assert import_main(flags) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "latest.pt" in out and "features_clustered_010.npz" in out
    state = load_checkpoint(tmp_path / "imp" / "latest.pt")
    assert set(state["nets"]) == {"G", "E"}
    from synth.models.networks import InstanceEncoder

    ours = InstanceEncoder(3, 3, 4, 2)
    ours.load_state_dict(state["nets"]["E"])
    image = torch.rand(1, 3, 16, 24, dtype=torch.float64)
    with torch.no_grad():  # in float64: a mapping error shows, the rounding of two equal normalisations does not
        torch.testing.assert_close(ours.net.double()(image), encoder.double()(image), rtol=0, atol=1e-12)
    clusters = FeatureClusters.load(tmp_path / "imp" / "features_clustered_010.npz")
    assert clusters.feat_num == 3 and set(clusters.centers) == {0, 2}
    for label, centres in CENTERS.items():
        np.testing.assert_array_equal(clusters.centers[label], centres.astype(np.float32))


def test_the_imported_feature_run_synthesizes_with_its_clusters(demo_root, tmp_path, capsys):
    from synth.commands.test import main as synth_test
    from synth.data import create_dataset
    from synth.inference import feature_source, load_generator
    from synth.options import parse_test_options

    source = tmp_path / "run"
    pix2pixhd_feature_run(source)
    flags = ["--pix2pixhd_dir", str(source), "--name", "imp", "--checkpoints_dir", str(tmp_path), *ARCH, *FEAT]
    assert import_main(flags) == 0, capsys.readouterr().err
    common = [
        "--name",
        "imp",
        "--checkpoints_dir",
        str(tmp_path),
        "--dataroot",
        str(demo_root),
        "--device",
        "cpu",
        "--resize_or_crop",
        "none",
        "--no_progress",
        "--nThreads",
        "0",
    ]
    assert synth_test([*common, "--instance_feat", "--results_dir", str(tmp_path / "res")]) == 0
    assert len(list((tmp_path / "res" / "imp" / "test_latest" / "images").glob("*_synthesized_image.png"))) == 3
    opt = parse_test_options([*common, "--instance_feat", "--cluster_choice", "2:1"])
    model = load_generator(opt)
    opt.size_multiple = 4
    dataset = create_dataset(opt)
    batch = {k: v[None] for k, v in dataset[0].items() if isinstance(v, torch.Tensor)}
    maps = feature_source(model, opt, dataset.has_images)(batch, None)[0]
    inst, label = batch["inst"][0, 0], batch["label"][0, 0]
    for segment in inst.unique():
        classes = label[inst == segment].unique()
        if classes.tolist() == [2]:  # an object of class 2 takes its class's chosen centre
            expected = torch.tensor(CENTERS[2][1], dtype=torch.float32)
            torch.testing.assert_close(maps[:, inst == segment][:, 0], expected)
    capsys.readouterr()
    assert synth_test([*common, "--instance_feat", "--cluster_choice", "2:2"]) == 2
    assert "cluster 2 does not exist for class 2: it has 2 clusters" in capsys.readouterr().err


class _RunsACommand:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write_object_npy(path, payload: bytes) -> None:
    """A .npy of one object (as np.save writes a dict) whose pickle is ``payload``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": ()})
    path.write_bytes(buffer.getvalue() + payload)


def test_a_malicious_cluster_file_is_refused_and_nothing_runs(tmp_path, capsys):
    source = tmp_path / "run"
    pix2pixhd_feature_run(source)
    marker = tmp_path / "pwned"
    evil = pickle.dumps({0: _RunsACommand(marker)}, protocol=3)
    write_object_npy(source / "features_clustered_010.npy", evil)
    flags = ["--pix2pixhd_dir", str(source), "--name", "imp", "--checkpoints_dir", str(tmp_path), *ARCH, *FEAT]
    assert import_main(flags) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "features_clustered_010.npy: refused" in err and "system" in err
    assert not marker.exists()
    write_object_npy(tmp_path / "eval.npy", pickle.dumps(eval, protocol=3))
    with pytest.raises(CheckpointError, match="refused, its pickle asks for builtins.eval"):
        read_pix2pixhd_clusters(tmp_path / "eval.npy", 3)


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda p: np.save(p, np.zeros((3, 3))), "holds a float64 array"),
        (lambda p: np.save(p, {0: np.zeros((2, 4))}), "features.npy keeps an area column"),
        (lambda p: np.save(p, [1, 2]), "holds a int64 array"),
        (lambda p: p.write_bytes(b"garbage"), "not a pix2pixHD cluster file"),
    ],
)
def test_foreign_cluster_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "features_clustered_010.npy"
    content(path)
    with pytest.raises(CheckpointError) as info:
        read_pix2pixhd_clusters(path, 3)
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_encoder_file_must_match_the_flags(tmp_path, capsys):
    source = tmp_path / "run"
    pix2pixhd_feature_run(source)
    base = ["--pix2pixhd_dir", str(source), "--name", "imp", "--checkpoints_dir", str(tmp_path), *ARCH]
    assert import_main(base) == 2  # G takes 9 channels; without --instance_feat ours takes 6
    (source / "latest_net_E.pth").unlink()
    assert import_main(base + FEAT) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "latest_net_E.pth: pix2pixHD encoder file not found" in err[1]
