"""Command-line flags (pix2pixHD's names), YAML config layering and the saved ``opt.yaml``."""

from synth.options.flags import ARCHITECTURE_KEYS
from synth.options.parse import (
    options_to_dict,
    parse_test_options,
    parse_train_options,
    save_options,
)

__all__ = ["ARCHITECTURE_KEYS", "options_to_dict", "parse_test_options", "parse_train_options", "save_options"]
