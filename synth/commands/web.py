"""``synth-web --name RUN``: the interactive editor in the browser (docs/editor.md): paint a layout, pick each
object's class and style, see the synthesized image."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from synth.commands.runner import arguments, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    """``synth-web --name RUN [--checkpoints_dir D] [--which_epoch E] [--host 127.0.0.1] [--port 7860]
    [--dataroot D --phase P] [--device DEV] [--amp none|bf16|fp16]``; other test flags pass through."""
    parser = argparse.ArgumentParser(prog="synth-web", description=__doc__)
    parser.add_argument("--name", required=True, help="the trained run to serve")
    parser.add_argument("--checkpoints_dir", default="./checkpoints")
    parser.add_argument("--which_epoch", default="latest")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--dataroot", default=None, help="dataset whose split's samples the page offers")
    parser.add_argument("--phase", default="test", help="the split offered as samples")
    parser.add_argument("--no_samples", action="store_true", help="offer no samples (uploads and painting only)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default=None, choices=("none", "bf16", "fp16"), help="default: the run's own")
    parser.add_argument("--max_upload_mb", type=int, default=16, help="largest upload or layout accepted")
    args, rest = parser.parse_known_args(arguments(argv))

    def body() -> int:
        import uvicorn

        from synth.web.server import build_state, create_app

        state = build_state(args, rest)
        print(f"synth-web: serving run '{args.name}' at http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
        uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
