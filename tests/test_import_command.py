"""synth-import-pix2pixhd: a pix2pixHD run folder becomes a synth checkpoint that test.py uses unchanged."""

import torch

from synth.checkpoint import load_checkpoint
from synth.commands.import_pix2pixhd import main as import_main
from synth.inference import load_generator
from synth.options import parse_test_options
from tests.test_pix2pixhd_import import RefGlobal, RefMultiscaleD, randomise

ARCH = ["--label_nc", "5", "--ngf", "4", "--n_downsample_global", "2", "--n_blocks_global", "1", "--ndf", "4",
        "--n_layers_D", "2", "--num_D", "2", "--device", "cpu"]


def test_imported_generator_gives_pix2pixhd_output(tmp_path, capsys):
    reference = randomise(RefGlobal(6, 3, 4, 2, 1, "instance"))  # 5 labels + boundary map in, RGB out
    discriminator = randomise(RefMultiscaleD(9, 4, 2, 2, True))
    source = tmp_path / "pix2pixhd_run"
    source.mkdir()
    torch.save(reference.state_dict(), source / "latest_net_G.pth")
    torch.save(discriminator.state_dict(), source / "latest_net_D.pth")
    code = import_main(["--pix2pixhd_dir", str(source), "--name", "imported", "--checkpoints_dir", str(tmp_path)]
                       + ARCH)
    assert code == 0, capsys.readouterr().err
    assert set(load_checkpoint(tmp_path / "imported" / "latest.pt")["nets"]) == {"G", "D"}
    opt = parse_test_options(["--name", "imported", "--checkpoints_dir", str(tmp_path), "--device", "cpu"])
    model = load_generator(opt)
    semantics = torch.rand(1, 6, 32, 48, dtype=torch.float64)
    with torch.no_grad():  # in float64: a mapping error shows, the rounding of two equal normalisations does not
        torch.testing.assert_close(model.double()(semantics), reference.double()(semantics), rtol=0, atol=1e-12)


def test_missing_generator_file_and_wrong_architecture(tmp_path, capsys):
    assert import_main(["--pix2pixhd_dir", str(tmp_path), "--checkpoints_dir", str(tmp_path)] + ARCH) == 2
    assert "latest_net_G.pth: pix2pixHD generator file not found" in capsys.readouterr().err
    torch.save(RefGlobal(6, 3, 8, 2, 1, "instance").state_dict(), tmp_path / "latest_net_G.pth")
    assert import_main(["--pix2pixhd_dir", str(tmp_path), "--checkpoints_dir", str(tmp_path)] + ARCH) == 2
    err = capsys.readouterr().err.strip()
    print(err)
    assert len(err.splitlines()) == 1 and "(8, 6, 7, 7)" in err and "(4, 6, 7, 7)" in err


def test_use_dropout_is_refused_on_import_and_the_import_without_it_works(tmp_path, capsys):
    """pix2pixHD never passed --use_dropout to its generator: a run trained with the flag has plain blocks."""
    source = tmp_path / "pix2pixhd_run"
    source.mkdir()
    reference = randomise(RefGlobal(6, 3, 4, 2, 1, "instance"))
    torch.save(reference.state_dict(), source / "latest_net_G.pth")
    argv = ["--pix2pixhd_dir", str(source), "--name", "imported", "--checkpoints_dir", str(tmp_path)] + ARCH
    assert import_main(argv + ["--use_dropout"]) == 2
    assert capsys.readouterr().err == (
        "error: --use_dropout: pix2pixHD parsed this flag but never built dropout into its generator, so its files "
        "have none; import without --use_dropout\n"
    )
    assert not (tmp_path / "imported").exists()
    assert import_main(argv) == 0, capsys.readouterr().err
    assert load_checkpoint(tmp_path / "imported" / "latest.pt")["options"]["use_dropout"] is False


def test_an_import_cannot_be_resumed(demo_root, tmp_path, capsys):
    torch.save(randomise(RefGlobal(6, 3, 4, 2, 1, "instance")).state_dict(), tmp_path / "latest_net_G.pth")
    assert import_main(["--pix2pixhd_dir", str(tmp_path), "--name", "imp", "--checkpoints_dir", str(tmp_path)]
                       + ARCH) == 0
    from synth.commands.train import main as train_main

    code = train_main(["--name", "imp", "--checkpoints_dir", str(tmp_path), "--continue_train",
                       "--dataroot", str(demo_root), "--device", "cpu", "--no_wandb", "--no_vgg_loss"])
    assert code == 2 and "cannot be resumed" in capsys.readouterr().err
