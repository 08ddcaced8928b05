"""``synth-import-pix2pixhd --pix2pixhd_dir DIR --name NAME [pix2pixHD's architecture flags]``."""

from __future__ import annotations

from collections.abc import Sequence

from synth.commands.runner import StrictParser, arguments, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Turn a pix2pixHD run's files into a synth run; prints the checkpoint written."""
    from synth.import_pix2pixhd import import_pix2pixhd_run

    parser = StrictParser(prog="synth-import-pix2pixhd", description=import_pix2pixhd_run.__doc__)
    parser.add_argument("--pix2pixhd_dir", required=True, help="pix2pixHD's checkpoints/NAME folder")
    parser.add_argument("--pix2pixhd_epoch", default="latest", help="which pix2pixHD epoch files to read")
    parser.add_argument("--overwrite", action="store_true", help="replace the latest.pt of an existing run NAME")

    def body() -> int:
        from synth.options import parse_train_options

        args, rest = parser.parse_known_args(arguments(argv))
        opt = parse_train_options(rest)
        for path in import_pix2pixhd_run(args.pix2pixhd_dir, args.pix2pixhd_epoch, opt, overwrite=args.overwrite):
            print(f"wrote {path}")
        return 0

    return run_cli(body)
