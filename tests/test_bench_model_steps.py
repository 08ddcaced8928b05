"""bench/model_steps.py at a tiny size, in this process (no timing asserted): the pretrained modulated run and its
pseudo-labels it prepares load, every config takes a step, and the batch's instance counts and table rows are
what the script reports."""

import numpy as np
import pytest

from bench import common
from bench import model_steps as ms
from synth.models.attributes import PseudoLabels

OBJECTS = 4


@pytest.mark.slow
def test_every_config_steps_on_the_prepared_run(tmp_path):
    args = ms.build_parser().parse_args(["--ngf", "4", "--no_vgg", "--objects", str(OBJECTS)])
    size = "64x32"
    args.size, args.workdir, args.warmup, args.iters = size, str(tmp_path), 0, 1
    common.make_dataset(ms.data_dir(tmp_path, size), 64, 32, n=2, objects=OBJECTS)
    prepared = ms.prepare(args)
    labels = PseudoLabels.load(prepared["labels"])
    # the objects synth-selfcond label would label (those over 1/64 of their image), of the two training images
    assert labels.attributes == ["random"] and set(labels.keys) <= {"bench_00000", "bench_00001"}
    assert prepared["labelled_objects"] == len(labels.keys) > 0 and np.all(labels.ids >= 1000)
    results = []
    for config in ms.CONFIGS:
        args.config = config
        results.append(ms.run_one(args))
    for result in results:
        assert result["median_s"] > 0 and result["iters"] == 1 and result["vgg_loss"] is False
        assert result["batch_size"] == 1 and 1 <= result["objects"] <= OBJECTS < result["segments"]
    counts = {(r["objects"], r["segments"]) for r in results}
    assert len(counts) == 1  # one fixed batch: the same first training image for every config
    by_name = {r["config"]: r for r in results}
    assert set(by_name["selfcond"]["params"]) == {"G", "E", "D", "C", "H"}
    assert set(by_name["ghfeat"]["params"]) == {"G", "E", "D"}
    rows = [ms.row(r, results) for r in results]
    assert rows[0][3] == "1.00x"
    expected = by_name["ghfeat"]["median_s"] / by_name["pix2pixhd"]["median_s"]
    assert rows[2][3] == f"{expected:.2f}x"
