"""Errors that the command-line tools turn into one clear line and a non-zero exit.

A leaf module: every layer (data, models, synth) may import it.
"""


class SynthError(Exception):
    """A problem the user can fix (bad input, missing file, contradicting flag); printed without traceback."""


class DataError(SynthError):
    """A dataset file or folder is missing, unreadable or inconsistent; the message names the file."""


class CheckpointError(SynthError):
    """A checkpoint is missing, damaged or belongs to another architecture."""


class OptionError(SynthError):
    """A flag or config key is unknown, out of range or contradicts another."""


class WeightsMissingError(SynthError):
    """Pretrained weights that cannot be downloaded here are absent; the message says where to put them."""
