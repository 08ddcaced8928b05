"""Flag parsing, YAML layering and the saved opt.yaml."""

import pytest
import yaml

from synth.core.errors import OptionError
from synth.options import parse_test_options, parse_train_options, save_options
from synth.options.parse import resolve_device_name


def test_pix2pixhd_defaults():
    opt = parse_train_options([])
    assert (opt.lr, opt.beta1, opt.niter, opt.niter_decay) == (0.0002, 0.5, 100, 100)
    assert (opt.label_nc, opt.ngf, opt.n_downsample_global, opt.n_blocks_global, opt.num_D) == (35, 64, 4, 9, 2)
    assert opt.lambda_feat == 10.0 and opt.gan_mode == "ls" and opt.isTrain


def test_yaml_layering_command_line_wins(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("ngf: 16\nname: from_yaml\nno_flip: true\nlr: '0.001'\n")
    opt = parse_train_options(["--config", str(config), "--name", "from_cli"])
    assert opt.ngf == 16 and opt.no_flip and opt.lr == 0.001
    assert opt.name == "from_cli"
    assert {"ngf", "name", "no_flip", "lr"} <= set(opt.explicit)


def test_yaml_key_that_is_no_flag(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("ngff: 16\n")
    with pytest.raises(OptionError, match=r"c\.yaml: 'ngff' is not a flag"):
        parse_train_options(["--config", str(config)])


@pytest.mark.parametrize(
    "text, message",
    [("ngf: sixteen\n", "'ngf' must be int"), ("no_flip: 3\n", "takes true or false"),
     ("norm: group\n", "'norm' must be one of"), ("- 1\n- 2\n", "must be a mapping"), ("a: [\n", "not valid YAML")],
)
def test_yaml_bad_values(tmp_path, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(OptionError, match=message):
        parse_train_options(["--config", str(config)])


def test_missing_config_file(tmp_path):
    with pytest.raises(OptionError, match="cannot read config file"):
        parse_train_options(["--config", str(tmp_path / "nope.yaml")])


def test_unknown_flag_and_range_errors():
    with pytest.raises(OptionError, match="unrecognized arguments"):
        parse_train_options(["--no_such_flag"])
    with pytest.raises(OptionError, match="--ngf must be at least 1"):
        parse_train_options(["--ngf", "0"])
    with pytest.raises(OptionError, match="fp16 needs a CUDA device"):
        parse_train_options(["--amp", "fp16", "--device", "cpu"])


def test_no_lsgan_means_vanilla():
    assert parse_train_options(["--no_lsgan"]).gan_mode == "vanilla"


def test_gpu_ids_minus_one_is_cpu():
    assert resolve_device_name("auto", "-1") == "cpu"
    with pytest.raises(OptionError):
        resolve_device_name("tpu", None)


def test_saved_options_round_trip(tmp_path):
    opt = parse_train_options(["--ngf", "8", "--name", "x"])
    save_options(opt, tmp_path / "opt.yaml")
    saved = yaml.safe_load((tmp_path / "opt.yaml").read_text())
    assert saved["ngf"] == 8 and saved["name"] == "x" and "explicit" not in saved
    # the saved file is itself a valid config
    again = parse_train_options(["--config", str(tmp_path / "opt.yaml")])
    assert again.ngf == 8


def test_test_options_defaults():
    opt = parse_test_options([])
    assert opt.phase == "test" and opt.how_many == 50 and not opt.isTrain


def test_a_model_adds_its_own_flags(tmp_path, monkeypatch):
    """SPADE-style hook: the model named by --model (or in the config) adds flags and defaults."""
    from synth.models.pix2pixhd_model import Pix2PixHDModel
    from synth.models.registry import MODELS

    class HookModel(Pix2PixHDModel):
        @staticmethod
        def add_options(parser, is_train):
            parser.add_argument("--lambda_extra", type=float, default=2.5)
            parser.set_defaults(gan_mode="hinge") if is_train else None

    monkeypatch.setitem(MODELS._entries, "hook_test", HookModel)  # removed again after the test
    opt = parse_train_options(["--model", "hook_test", "--lambda_extra", "4"])
    assert opt.lambda_extra == 4.0 and opt.gan_mode == "hinge"
    config = tmp_path / "c.yaml"
    config.write_text("model: hook_test\nlambda_extra: 1.5\n")
    assert parse_train_options(["--config", str(config)]).lambda_extra == 1.5
    with pytest.raises(OptionError, match="unrecognized arguments: --lambda_extra"):
        parse_train_options(["--lambda_extra", "4"])


def test_discriminator_learning_rate_and_beta2():
    from synth.trainer import learning_rate

    opt = parse_train_options(["--lr", "1e-4", "--lr_D", "4e-4", "--beta1", "0", "--beta2", "0.9", "--niter", "1",
                               "--niter_decay", "2"])
    assert learning_rate(opt, 1, "G") == 1e-4 and learning_rate(opt, 1, "D") == 4e-4
    assert learning_rate(opt, 3, "D") == pytest.approx(2e-4)
    assert learning_rate(parse_train_options([]), 1, "D") == 2e-4  # --lr_D 0: same as --lr


@pytest.mark.parametrize("native", [True, False])
def test_amp_auto_picks_bf16_only_where_the_cpu_has_native_bf16(monkeypatch, capsys, native):
    import synth.options.parse as parse

    monkeypatch.setattr(parse, "cpu_has_native_bf16", lambda: native)
    opt = parse_train_options(["--amp", "auto", "--device", "cpu"])
    assert opt.amp == ("bf16" if native else "none")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"--amp auto: {opt.amp} (") and ("has native" if native else "no native") in line
    assert parse_test_options(["--amp", "auto", "--device", "cpu"]).amp == opt.amp


@pytest.mark.parametrize("argv, message", [
    (["--which_epoch", "abc"], "--which_epoch must be 'latest' or an epoch number"),
    (["--which_epoch", "0"], "--which_epoch must be 'latest' or an epoch number"),
    (["--save_epoch_freq", "0"], "--save_epoch_freq must be at least 1, got 0"),
    (["--print_freq", "-5"], "--print_freq must be at least 0 (0: off), got -5"),
    (["--display_freq", "-1"], "--display_freq must be at least 0"),
    (["--max_dataset_size", "-1"], "--max_dataset_size must be at least 0 (0: all), got -1"),
    (["--niter_fix_global", "-2"], "--niter_fix_global must be at least 0"),
])
def test_out_of_range_integers_are_refused_at_parse_time(argv, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_train_options(argv)


def test_test_options_check_which_epoch_and_how_many():
    assert parse_test_options(["--which_epoch", "12"]).which_epoch == "12"
    with pytest.raises(OptionError, match="--which_epoch must be"):
        parse_test_options(["--which_epoch", "best"])
    with pytest.raises(OptionError, match="--how_many must be at least 0"):
        parse_test_options(["--how_many", "-3"])


@pytest.mark.parametrize("text, message", [
    ("niter: null\n", "'niter' needs a value \\(null is only allowed"),
    ("niter: 1.9\n", "'niter' must be int, not 1.9"),
    ("batchSize: 0\n", "--batchSize must be at least 1"),
])
def test_yaml_values_are_checked_like_flags(tmp_path, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(OptionError, match=message):
        parse_train_options(["--config", str(config)])
