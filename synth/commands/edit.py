"""``synth-edit``: change one layout's instances (cluster, class) with a feature run and save before / after."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from synth.commands.runner import StrictParser, arguments, run_cli
from synth.editing import EditRequest, InstanceEditor, save_edit
from synth.features import FeatureClusters, default_cluster_path, parse_pairs
from synth.options.validate import COMMAND_RANGES, check_ranges


def main(argv: Sequence[str] | None = None) -> int:
    """``synth-edit --name NAME --label L.png --inst I.png [--image R.png] [--set_cluster ID:K] [--set_class ID:C]
    [--class_cluster C:K] [--out DIR]``."""
    parser = StrictParser(prog="synth-edit", add_help=False)
    parser.add_argument("--label", required=True)
    parser.add_argument("--inst", default=None)
    parser.add_argument("--image", default=None)
    parser.add_argument("--set_cluster", nargs="*", default=[], help="INSTANCE:CLUSTER")
    parser.add_argument("--set_class", nargs="*", default=[], help="INSTANCE:CLASS")
    parser.add_argument("--class_cluster", nargs="*", default=[], help="CLASS:CLUSTER")
    parser.add_argument("--out", default=None, help="output folder (default results/NAME/edits)")

    def body() -> int:
        args, rest = parser.parse_known_args(arguments(argv))
        check_ranges(args, COMMAND_RANGES)
        from synth.inference import load_generator
        from synth.options import parse_test_options

        opt = parse_test_options(rest)
        model = load_generator(opt)
        cluster_path = opt.cluster_path or default_cluster_path(opt)
        clusters = FeatureClusters.load(cluster_path)
        clusters.check_fits(cluster_path, opt.feat_num, opt.label_nc)
        request = EditRequest(
            parse_pairs(args.set_cluster, "--set_cluster"), parse_pairs(args.set_class, "--set_class"),
            parse_pairs(args.class_cluster, "--class_cluster"),
        )
        editor = InstanceEditor(model, clusters, opt.seed)
        layout = editor.load_layout(args.label, args.inst, args.image)
        before, after, edited = editor.edit(layout, request)
        out_dir = Path(args.out) if args.out else Path(opt.results_dir) / opt.name / "edits"
        path = save_edit(out_dir, layout, edited, before, after, opt.label_nc)
        print(f"wrote {path}")
        return 0

    return run_cli(body)
