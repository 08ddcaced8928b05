"""Command-line entry points (``synth-train``, ``synth-test``; ``train.py`` and ``test.py`` call the same functions).

A SynthError becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def run_cli(body: Callable[[], int | None]) -> int:
    """Run ``body``; user errors print ``error: <message>`` and return 2; Ctrl-C returns 130."""
    from synth.errors import SynthError

    try:
        return int(body() or 0)
    except SynthError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def one_line(exc: Exception) -> str:
    """The message of ``exc``; for an error re-raised from a DataLoader worker, the original message only."""
    text = str(exc).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
        return last[len(prefix) :] if last.startswith(prefix) else last
    return text.splitlines()[0] if text else type(exc).__name__


def train_main(argv: list[str] | None = None) -> int:
    """``synth-train``: train or continue a run; prints the last checkpoint."""

    def body() -> int:
        from options import parse_train_options
        from synth.trainer import train

        last = train(parse_train_options(sys.argv[1:] if argv is None else argv))
        print(f"saved {last}")
        return 0

    return run_cli(body)


def test_main(argv: list[str] | None = None) -> int:
    """``synth-test``: synthesize a split or a folder of label maps; prints the results page."""

    def body() -> int:
        from options import parse_test_options
        from synth.inference import run_inference

        page = run_inference(parse_test_options(sys.argv[1:] if argv is None else argv))
        print(f"results page: {page}")
        return 0

    return run_cli(body)
