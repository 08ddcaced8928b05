"""YAML presets (``--config``), installed as package data ``synth.configs``."""
