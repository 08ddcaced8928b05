"""synth.api: every input kind gives the same image, every output kind the same pixels, cluster and class choices
change the chosen instances only, photo styles and variants, bad input is the command line's one line, labels and
instances round trip through PNG, and the docs/api.md example runs."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synth.api import Run, load_run
from synth.core.errors import DataError, OptionError
from synth.data.io import encode_instance_png, encode_label_png, read_instance, read_label
from tests.conftest import tiny_flags

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def doc_example() -> str:
    """The one python code block of docs/api.md."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1
    return blocks[0]


def with_paths(code: str, run_name: str, checkpoints: Path, label_png: Path) -> str:
    """The example with its RUN_NAME / CHECKPOINTS / LABEL_PNG lines pointing at this test's files."""
    values = {"RUN_NAME": run_name, "CHECKPOINTS": str(checkpoints), "LABEL_PNG": str(label_png)}
    for key, value in values.items():
        code, count = re.subn(rf"^{key} = .*$", f"{key} = {value!r}", code, count=1, flags=re.M)
        assert count == 1, key
    return code


@pytest.fixture(scope="module")
def tiny_run(demo_root, tmp_path_factory):
    from synth.options import parse_train_options
    from synth.trainer import Trainer

    checkpoints = tmp_path_factory.mktemp("api")
    Trainer(parse_train_options(tiny_flags(demo_root, checkpoints) + ["--max_iters", "2"])).train()
    return checkpoints


@pytest.fixture
def paths(demo_root):
    return demo_root / "test_label" / "demo_00000.png", demo_root / "test_inst" / "demo_00000.png"


def test_every_input_kind_gives_the_same_image(tiny_run, paths):
    run = load_run("tiny", tiny_run)
    label_png, inst_png = paths
    label, inst = read_label(label_png), read_instance(inst_png)
    from_files = run.synthesize(label_png, inst_png)
    assert from_files.shape == (*label.shape, 3) and from_files.dtype == np.uint8
    assert np.array_equal(run.synthesize(str(label_png), str(inst_png)), from_files)
    assert np.array_equal(run.synthesize(label.astype(np.uint8), inst.astype(np.int32)), from_files)
    assert np.array_equal(run.synthesize(torch.from_numpy(label), torch.from_numpy(inst)[None]), from_files)
    pil_label = Image.fromarray(label.astype(np.uint8))
    pil_inst = Image.fromarray(inst.astype(np.int32), mode="I")
    assert np.array_equal(run.synthesize(pil_label, pil_inst), from_files)


def test_output_kinds_hold_the_same_pixels(tiny_run, paths):
    run = load_run("tiny", tiny_run)
    array = run.synthesize(*paths)
    pil = run.synthesize(*paths, output="pil")
    tensor = run.synthesize(*paths, output="tensor")
    assert pil.mode == "RGB" and np.array_equal(np.asarray(pil), array)
    assert tensor.shape == (3, *array.shape[:2]) and tensor.dtype == torch.float32
    assert -1 <= float(tensor.min()) and float(tensor.max()) <= 1
    assert np.array_equal(((tensor.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy(), array)
    assert run.label_nc == 5 and run.needs_instance and run.size_multiple == 4


@pytest.mark.parametrize(
    "case, message",
    [
        ("big_id", "label map: label id 7 found but --label_nc is 5 (ids must be in [0, 5)); set --label_nc 8 or more"),
        ("sizes", "instance map: size 32x28 differs from its label map (32x32)"),
        ("stride", "label map: size 30x30 is not divisible by 4, the generator's total stride; crop or pad it to a "
         "multiple of 4"),
        ("no_inst", "label map: this model needs the instance map too (--inst)"),
        ("float", "label map: label map holds float64 values; a map of integer ids is expected"),
        ("rgb", "label map: label map is a RGB image; a single-channel map of integer ids is expected"),
        ("clusters", "tiny: cluster and style choices need a feature run (--instance_feat/--label_feat)"),
        ("output", "output must be 'numpy', 'pil' or 'tensor', not 'png'"),
    ],
)
def test_bad_input_is_one_line(tiny_run, paths, case, message):
    run = load_run("tiny", tiny_run)
    label, inst = read_label(paths[0]), read_instance(paths[1])
    calls = {
        "big_id": lambda: run.synthesize(np.where(label == 0, 7, label), inst),
        "sizes": lambda: run.synthesize(label, inst[:28]),
        "stride": lambda: run.synthesize(label[:30, :30], inst[:30, :30]),
        "no_inst": lambda: run.synthesize(label),
        "float": lambda: run.synthesize(label.astype(float), inst),
        "rgb": lambda: run.synthesize(Image.new("RGB", (32, 32)), inst),
        "clusters": lambda: run.synthesize(label, inst, clusters={1: 0}),
        "output": lambda: run.synthesize(label, inst, output="png"),
    }
    with pytest.raises((DataError, OptionError)) as err:
        calls[case]()
    assert str(err.value) == message


def test_a_missing_label_file_names_it(tiny_run, tmp_path):
    run = load_run("tiny", tiny_run)
    with pytest.raises(DataError, match=r"missing\.png: file not found$"):
        run.synthesize(tmp_path / "missing.png", tmp_path / "missing.png")


def test_the_docs_example_runs(tiny_run, paths, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(with_paths(doc_example(), "tiny", tiny_run, paths[0]), str(DOC), "exec"), {})
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "synthesized.png")), load_run("tiny", tiny_run).synthesize(*paths)
    )


def pick_instance(run, layout, segments) -> tuple[int, int, int]:
    """(instance id among ``segments``, its class, a cluster index that none of them has by default) of an
    instance whose class has 2+ clusters."""
    table = run.feature_table(layout, seed=0)
    classes = run.segment_classes(layout)
    for segment in segments:
        for index, centre in enumerate(run.clusters.centers.get(classes[segment], ())):
            if not any(np.allclose(centre, table[s]) for s in segments):
                return segment, classes[segment], index
    pytest.skip("no instance whose class has a cluster its instances do not have already")


# Two discs (class 2) 80 px apart on a 128x128 sky-over-ground scene. The feature run's G (7x7 conv, 2
# down-samplings, 1 residual block, 2 up-samplings, 7x7 conv) sees 47x47 pixels, so past MARGIN px from one
# disc only InstanceNorm's image-wide statistics carry its feature. A 64x64 demo test scene does not do for
# this: its objects touch, all of it lies in G's receptive field, and the segment these tests used to pick was
# the sky, half the image, whose feature moves every normalization statistic (change 3.63 inside, 3.80 outside).
DISC, OTHER_DISC, MARGIN = 2000, 2001, 24


@pytest.fixture(scope="module")
def two_discs() -> tuple[np.ndarray, np.ndarray]:
    """(label, instance) ids of the scene above."""
    label = np.zeros((128, 128), np.uint8)
    label[64:] = 1
    inst = label.astype(np.int32)
    label[8:24, 8:24], inst[8:24, 8:24] = 2, DISC
    label[104:120, 104:120], inst[104:120, 104:120] = 2, OTHER_DISC
    return label, inst


def change_map(run, layout, before: dict, after: dict) -> np.ndarray:
    """Per-pixel mean absolute RGB change between the images of two feature tables."""
    images = [run.render(layout, table)["synthesized_image"].astype(float) for table in (before, after)]
    return np.abs(images[1] - images[0]).mean(2)


def far_from(mask: np.ndarray, margin: int) -> np.ndarray:
    """Pixels more than ``margin`` px (in x or y) from every pixel of ``mask``."""
    ys, xs = np.nonzero(mask)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    return np.maximum(np.abs(yy[..., None] - ys), np.abs(xx[..., None] - xs)).min(-1) > margin


def local_to(change: np.ndarray, inst: np.ndarray, segment: int, other: int) -> bool:
    """The change is the chosen instance's: visible there, at least twice the other same-class instance's, and
    at least five times that of the pixels past MARGIN."""
    inside = change[inst == segment].mean()
    return bool(inside > 1 and inside >= 2 * change[inst == other].mean()
                and inside >= 5 * change[far_from(inst == segment, MARGIN)].mean())


def test_a_cluster_choice_changes_that_instance(synth, two_discs):
    layout = synth.layout(*two_discs)
    label, inst = layout.label, layout.inst
    segment, label_id, index = pick_instance(synth, layout, (DISC, OTHER_DISC))
    other = OTHER_DISC if segment == DISC else DISC
    base = synth.feature_table(layout, seed=0)
    chosen = synth.feature_table(layout, {segment: index}, seed=0)
    assert np.allclose(chosen[segment], synth.clusters.centers[label_id][index])
    assert all(np.array_equal(chosen[s], base[s]) for s in base if s != segment)  # the others are not redrawn
    before = synth.synthesize(label, inst, seed=0)
    after = synth.synthesize(label, inst, clusters={segment: index}, seed=0)
    change = np.abs(after.astype(float) - before).mean(2)
    np.testing.assert_array_equal(change, change_map(synth, layout, base, chosen))
    assert local_to(change, inst, segment, other)
    # and the check fails when the choice goes to every disc, or to the other one
    assert not local_to(change_map(synth, layout, base, {**chosen, other: chosen[segment]}), inst, segment, other)
    assert not local_to(change_map(synth, layout, base, {**base, other: chosen[segment]}), inst, segment, other)
    assert np.array_equal(synth.synthesize(label, inst, seed=0), before)


def test_class_choices_and_bad_cluster_choices(synth, two_discs):
    layout = synth.layout(*two_discs)
    label, inst = layout.label, layout.inst
    segment, label_id, index = pick_instance(synth, layout, (DISC, OTHER_DISC))
    table = synth.feature_table(layout, class_clusters={label_id: index}, seed=0)
    assert np.allclose(table[segment], synth.clusters.centers[label_id][index])
    count = synth.clusters.cluster_count(label_id)
    with pytest.raises(
        OptionError,
        match=rf"^instance {segment}: cluster 99 does not exist; class {label_id} "
        rf"has {count} clusters$",
    ):
        synth.synthesize(label, inst, clusters={segment: 99})
    with pytest.raises(OptionError, match=r"^label map: instance 123456 is not in the map"):
        synth.synthesize(label, inst, clusters={123456: 0})
    with pytest.raises(OptionError, match=r"^class_clusters: class 9 is out of range \(label_nc 5\)$"):
        synth.synthesize(label, inst, class_clusters={9: 0})
    with pytest.raises(OptionError, match=rf"^class {label_id}: cluster 99 does not exist"):
        synth.synthesize(label, inst, class_clusters={label_id: 99})


@pytest.fixture(scope="module")
def synth(feature_run) -> Run:
    return load_run(feature_run["name"], feature_run["checkpoints"])


@pytest.fixture(scope="module")
def maps(feature_run) -> tuple[Path, Path]:
    root = feature_run["dataroot"]
    return root / "test_label" / "demo_00000.png", root / "test_inst" / "demo_00000.png"


def test_every_input_form_gives_the_same_image(synth, maps):
    label_path, inst_path = maps
    label, inst = read_label(label_path), read_instance(inst_path)
    first = synth.synthesize(label_path, inst_path)
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    forms = [
        (str(label_path), str(inst_path)),
        (label, inst),
        (Image.open(label_path), Image.open(inst_path)),
        (torch.from_numpy(label)[None], torch.from_numpy(inst)),
        (open(label_path, "rb"), open(inst_path, "rb")),
    ]
    for label_in, inst_in in forms:
        np.testing.assert_array_equal(synth.synthesize(label_in, inst_in), first)
    pil = synth.synthesize(label, inst, output="pil")
    assert isinstance(pil, Image.Image) and pil.size == (64, 64)
    np.testing.assert_array_equal(np.asarray(pil), first)


def test_a_cluster_choice_changes_that_instance_and_nothing_else_much(synth, two_discs):
    layout = synth.layout(*two_discs)
    classes = synth.segment_classes(layout)
    assert synth.cluster_count(classes[DISC]) > 1, "the tiny run should have clusters for the demo's objects"
    current = synth.cluster_choices(layout)[DISC]
    centers = synth.clusters.centers[classes[DISC]]
    other = int(np.argmax(np.abs(centers - centers[current]).sum(1)))
    before = synth.synthesize(layout).astype(float)
    after = synth.synthesize(layout, clusters={DISC: other}).astype(float)
    change = np.abs(after - before).mean(2)
    inst = layout.inst
    inside = change[inst == DISC].mean()
    assert inside > 1
    # every other segment (sky, ground, the other disc) changes on average at most half as much ...
    others = {s: change[inst == s].mean() for s in classes if s != DISC}
    assert max(others.values()) <= inside / 2, (inside, others)
    # ... and the pixels out of G's reach from the disc at most a fifth
    assert change[far_from(inst == DISC, MARGIN)].mean() <= inside / 5
    # other instances keep their clusters: the default is drawn per instance id, not in sequence
    assert synth.cluster_choices(layout, {DISC: other}) == {**synth.cluster_choices(layout), DISC: other}


def test_styles_from_a_photo_and_variants(synth, maps, feature_run):
    layout = synth.layout(*maps)
    photo = feature_run["dataroot"] / "test_img" / "demo_00000.png"
    styles = synth.encode_styles(photo, layout)
    assert set(styles) == set(synth.segment_classes(layout)) and all(v.shape == (3,) for v in styles.values())
    from_photo = synth.synthesize(layout, photo=photo)
    np.testing.assert_array_equal(from_photo, synth.synthesize(layout, styles=styles))
    target = next(s for s, c in synth.segment_classes(layout).items() if synth.cluster_count(c) > 1)
    variants = synth.variants(layout, target, count=2)
    assert [k for k, _ in variants] == [0, 1]
    np.testing.assert_array_equal(variants[1][1], synth.synthesize(layout, clusters={target: 1}))


def test_bad_layouts_give_the_command_lines_one_line_errors(synth, maps, tmp_path):
    label, inst = read_label(maps[0]), read_instance(maps[1])
    with pytest.raises(
        DataError, match=r"^label\.png: label id 7 found but --label_nc is 5 \(ids must be in \[0, 5\)\)"
    ):
        bad = label.copy()
        bad[0, 0] = 7
        synth.layout(bad, inst, name="label.png")
    with pytest.raises(DataError, match=r"^instance map: size 32x64 differs from its label map \(64x64\)$"):
        synth.layout(label, inst[:, :32])
    with pytest.raises(DataError, match=r"size 62x64 is not divisible by 4, the generator's total stride"):
        synth.layout(label[:, :62], inst[:, :62])
    with pytest.raises(DataError, match=r"needs the instance map too"):
        synth.layout(label)
    with pytest.raises(DataError, match=r"rgb\.png: label map has 3 channels"):
        Image.new("RGB", (64, 64)).save(tmp_path / "rgb.png")
        synth.layout(open(tmp_path / "rgb.png", "rb"), inst, name="rgb.png")
    with pytest.raises(DataError, match=r"float64 values"):
        synth.layout(label.astype(float), inst)
    layout = synth.layout(label, inst)
    with pytest.raises(OptionError, match=r"instance 4242 is not in the map"):
        synth.synthesize(layout, clusters={4242: 0})
    target = next(s for s, c in synth.segment_classes(layout).items() if synth.cluster_count(c) > 0)
    with pytest.raises(OptionError, match=rf"instance {target}: cluster 99 does not exist"):
        synth.synthesize(layout, clusters={target: 99})


def test_label_and_instance_pngs_round_trip(maps):
    label, inst = read_label(maps[0]), read_instance(maps[1])
    for encode, read, ids in ((encode_label_png, read_label, label), (encode_instance_png, read_instance, inst)):
        np.testing.assert_array_equal(read(io.BytesIO(encode(ids))), ids)

