"""docs/editor.md's screenshot, made with the browser test's helpers on a real run: serve the run, open the
editor on a sample of its split, select the largest object and give it its farthest cluster, save the page.

    python -m tests.web_screenshot docs/images/editor/editor.png --name demo_features \\
        --checkpoints_dir ./checkpoints --dataroot ./datasets/demo

(after ``synth-demo --with_features``; needs Playwright and Debian's chromium, as tests/test_web_browser.py)."""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from tests.web_helpers import VIEWPORT, EditorPage, chromium, editor_app, inside_point, running_server


def restyle_largest_object(editor: EditorPage, run) -> tuple[int, int]:
    """Select the page's largest object (instance id >= 1000) whose class has 2+ clusters with the instance
    tool and give it the cluster farthest from its current one: (instance id, cluster index)."""
    label, inst = editor.layout()
    objects = [int(s) for s in set(inst.reshape(-1).tolist()) if s >= 1000]
    objects = [s for s in objects if run.cluster_count(int(label[inst == s][0])) > 1]
    if not objects:
        raise SystemExit("error: the sample has no object whose class has two clusters; pick another --sample")
    segment = max(objects, key=lambda s: int((inst == s).sum()))
    editor.select_instance(*inside_point(inst == segment))
    return segment, editor.choose_farthest_cluster(run.clusters.centers[int(label[inst == segment][0])])


def save_small_png(png: bytes, path: Path) -> None:
    """The screenshot as an optimized PNG (the page is mostly flat colours)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(io.BytesIO(png)).convert("RGB").save(path, optimize=True)


def make_screenshot(run, out: Path, browser, dataroot: str | Path | None = None, phase: str = "test",
                    sample: str | None = None) -> tuple[str, int, int]:
    """Serve ``run``, open a sample (the split's first by default), restyle its largest object, save the page
    to ``out``: (sample, instance id, cluster index)."""
    with running_server(editor_app(run, dataroot, phase)) as url:
        context = browser.new_context(viewport=VIEWPORT)
        try:
            editor = EditorPage(context.new_page(), url, out.parent)
            editor.open()
            if sample is not None:
                editor.load_sample(sample)
            segment, cluster = restyle_largest_object(editor, run)
            save_small_png(editor.page.screenshot(full_page=True), out)
            return editor.page.locator("#sample").input_value(), segment, cluster
        finally:
            context.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Make the screenshot; prints what was selected."""
    parser = argparse.ArgumentParser(prog="python -m tests.web_screenshot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--name", required=True, help="the trained feature run (with clusters)")
    parser.add_argument("--checkpoints_dir", default="./checkpoints")
    parser.add_argument("--dataroot", default=None, help="dataset whose samples the page offers (default: the run's)")
    parser.add_argument("--phase", default="test")
    parser.add_argument("--sample", default=None, help="the sample to open (default: the split's first)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    from synth.api import Run

    run = Run.load(args.name, checkpoints_dir=args.checkpoints_dir, device=args.device)
    with chromium() as browser:
        sample, segment, cluster = make_screenshot(run, args.out, browser, args.dataroot, args.phase, args.sample)
    print(f"{args.out}: run {args.name}, sample {sample}, instance {segment} given cluster {cluster}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
