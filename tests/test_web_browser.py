"""The editor in a real browser: Playwright driving Debian's Chromium (``/usr/bin/chromium``; ``.ci/run`` installs
it) against ``synth-web``'s app served by uvicorn on 127.0.0.1, with the tiny feature run of conftest.

Set ``SYNTH_EDITOR_SCREENSHOT=path.png`` to also save a screenshot of the cluster test's page; docs/editor.md's
picture of the demo run comes from tests/web_screenshot.py, with the same helpers (its test is the last one)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synth.api import Run
from synth.data.io import encode_instance_png, encode_label_png, read_image, read_instance, read_label
from tests import web_screenshot
from tests.web_helpers import CHROMIUM, VIEWPORT, EditorPage, chromium, editor_app, running_server

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs Debian's chromium (.ci/run installs it)"
)
SIZE = 128
BOX, DISC = 3001, 2001


@pytest.fixture(scope="module")
def synth(feature_run) -> Run:
    return Run.load(feature_run["name"], checkpoints_dir=feature_run["checkpoints"], device="cpu")


@pytest.fixture(scope="module")
def server(synth):
    with running_server(editor_app(synth)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def editor(browser, server, tmp_path) -> EditorPage:
    context = browser.new_context(accept_downloads=True, viewport=VIEWPORT)
    page = EditorPage(context.new_page(), server, tmp_path)
    page.open()
    yield page
    context.close()


@pytest.fixture(scope="module")
def layout_files(tmp_path_factory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A 128x128 scene (sky over ground, a small box and a disc) as label and instance PNGs."""
    label = np.zeros((SIZE, SIZE), np.uint8)
    label[SIZE // 2 :] = 1
    inst = label.astype(np.uint16)
    label[70:82, 40:52], inst[70:82, 40:52] = 3, BOX
    label[20:40, 80:100], inst[20:40, 80:100] = 2, DISC
    folder = tmp_path_factory.mktemp("layout")
    (folder / "scene.png").write_bytes(encode_label_png(label))
    (folder / "scene_inst.png").write_bytes(encode_instance_png(inst))
    return folder / "scene.png", folder / "scene_inst.png", label, inst


def change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(float) - b.astype(float)).mean(2)


def test_a_stroke_changes_the_image_inside_its_box_far_more_than_far_away(editor, layout_files):
    editor.upload(layout_files[0], layout_files[1])
    before = editor.result()
    editor.choose_class(4)  # triangle: a thing class, so the stroke is a new instance
    editor.stroke([(12, 12), (40, 14)], size=6)
    after = editor.result()
    label, inst = editor.layout()
    assert (label[11:15, 14:38] == 4).all() and len(np.unique(inst[label == 4])) == 1 and inst[12, 20] == 4000
    diff = change(before, after)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    in_box = (yy >= 8) & (yy <= 18) & (xx >= 8) & (xx <= 44)
    far = (yy > 18 + 30) | (xx > 44 + 30)
    assert diff[in_box].mean() > 10 * max(diff[far].mean(), 0.05), (diff[in_box].mean(), diff[far].mean())


def test_a_cluster_change_concentrates_on_the_selected_object(editor, layout_files, synth):
    editor.upload(layout_files[0], layout_files[1])
    before = editor.result()
    editor.select_instance(45, 75)
    assert editor.page.locator("#sel-id").inner_text().startswith(f"{BOX} (box)")
    farthest = editor.choose_farthest_cluster(synth.clusters.centers[3])
    after = editor.result()
    diff = change(before, after)
    mask = layout_files[3] == BOX
    assert diff[mask].mean() >= 5 * diff[~mask].mean() and diff[mask].mean() > 1, (
        diff[mask].mean(),
        diff[~mask].mean(),
    )
    strip = editor.page.locator("#variants figure")
    assert strip.count() == min(6, synth.cluster_count(3))
    assert editor.page.locator("#variants figure.current").get_attribute("data-cluster") == str(farthest)
    editor.screenshot_if_asked()


def test_undo_back_to_the_start_gives_the_first_image_byte_for_byte(editor, layout_files):
    first = editor.result_bytes()
    editor.upload(layout_files[0], layout_files[1])
    editor.choose_class(1)
    editor.stroke([(5, 5), (30, 30)], size=4)
    editor.select_instance(90, 30)
    editor.page.locator("#random-cluster").click()
    editor.wait_ready()
    assert editor.result_bytes() != first
    while not editor.page.locator("#undo").is_disabled():
        editor.page.locator("#undo").click()
    editor.wait_ready()
    assert editor.result_bytes() == first
    editor.page.locator("#redo").click()
    editor.wait_ready()
    assert editor.layout()[0].shape == (SIZE, SIZE)


def test_upload_then_the_three_downloads_round_trip(editor, layout_files, synth, tmp_path):
    label_path, inst_path, label, inst = layout_files
    editor.upload(label_path, inst_path)
    shown = editor.result()
    paths = {
        kind: editor.download(f"#download-{kind}", tmp_path / f"{kind}.png") for kind in ("label", "inst", "result")
    }
    np.testing.assert_array_equal(read_label(paths["label"]), label)
    np.testing.assert_array_equal(read_instance(paths["inst"]), inst)
    np.testing.assert_array_equal(read_image(paths["result"]), shown)
    again = synth.synthesize(read_label(paths["label"]), read_instance(paths["inst"]))
    np.testing.assert_array_equal(again, shown)


def test_a_bad_upload_shows_the_error_line_and_keeps_the_layout(editor, tmp_path):
    label_before, inst_before = editor.layout()
    image_before = editor.result_bytes()
    colour = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (10, 120, 200)).save(colour)
    editor.upload(colour, None, expect_error=True)
    message = editor.page.locator("#error")
    assert message.is_visible()
    assert message.inner_text().startswith("error: photo.png: label map has 3 channels (mode RGB)")
    label_after, inst_after = editor.layout()
    np.testing.assert_array_equal(label_after, label_before)
    np.testing.assert_array_equal(inst_after, inst_before)
    assert editor.result_bytes() == image_before
    assert editor.page.locator("#layout-canvas").is_visible() and editor.page.locator("#result").is_visible()


def test_the_screenshot_command_selects_and_restyles_the_largest_object(synth, browser, feature_run, tmp_path):
    out = tmp_path / "shot" / "editor.png"
    shown = web_screenshot.make_screenshot(synth, out, browser, feature_run["dataroot"], sample="demo_00001")
    inst = read_instance(feature_run["dataroot"] / "test_inst" / "demo_00001.png")
    areas = {s: int((inst == s).sum()) for s in np.unique(inst) if s >= 1000}
    assert shown[:2] == ("demo_00001", max(areas, key=areas.get)) and 0 <= shown[2] < synth.cluster_count(3)
    with Image.open(out) as shot:
        assert shot.format == "PNG" and shot.width >= VIEWPORT["width"] and shot.height >= VIEWPORT["height"]
