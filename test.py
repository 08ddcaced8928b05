"""Synthesize images from label maps with a trained model: ``python test.py --name NAME`` (same as ``synth-test``)."""

from synth.cli import test_main

if __name__ == "__main__":
    raise SystemExit(test_main())
