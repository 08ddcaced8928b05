"""Synthesize images from label maps with a trained model: ``python test.py --name NAME`` (same as ``synth-test``)."""

from synth.commands.test import main

if __name__ == "__main__":
    raise SystemExit(main())
