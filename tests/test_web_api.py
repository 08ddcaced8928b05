"""The editor's HTTP API (FastAPI TestClient): every endpoint, the lossless id round trips, and each bad upload
answered with a 4xx whose detail is the command line's one line."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from synth.api import Run
from synth.data.io import encode_instance_png, encode_label_png, read_image, read_instance, read_label
from synth.web.server import EditorState, SplitSamples, create_app

UPLOAD_CAP = 256 << 10


@pytest.fixture(scope="module")
def synth(feature_run) -> Run:
    return Run.load(feature_run["name"], checkpoints_dir=feature_run["checkpoints"], device="cpu")


@pytest.fixture(scope="module")
def client(synth) -> TestClient:
    state = EditorState(synth, SplitSamples(synth, None, "test"), max_upload_bytes=UPLOAD_CAP)
    return TestClient(create_app(state))


@pytest.fixture(scope="module")
def sample(feature_run) -> tuple[np.ndarray, np.ndarray]:
    root = feature_run["dataroot"]
    return read_label(root / "test_label" / "demo_00000.png"), read_instance(root / "test_inst" / "demo_00000.png")


def body_of(label: np.ndarray, inst: np.ndarray, **extra) -> dict:
    return {
        "width": label.shape[1],
        "height": label.shape[0],
        "label": base64.b64encode(label.astype(np.uint8).tobytes()).decode(),
        "inst": base64.b64encode(inst.astype("<u2").tobytes()).decode(),
        **extra,
    }


def decode_png(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def png_file(array: np.ndarray) -> bytes:
    return encode_instance_png(array) if array.dtype == np.uint16 else encode_label_png(array)


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/editor.js" in page.text and "/static/editor.css" in page.text
    for name in ("editor.js", "editor.css", "index.html"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "cdn" not in page.text.lower() and "http" not in client.get("/static/editor.js").text.split("\n", 3)[3]


def test_info_describes_the_run(client):
    info = client.get("/api/info").json()
    assert info["label_nc"] == 5 and info["uses_features"] and info["has_clusters"] and info["uses_instances"]
    assert [c["name"] for c in info["classes"]] == ["sky", "ground", "disc", "box", "triangle"]
    assert [c["id"] for c in info["classes"] if c["thing"]] == [2, 3, 4]
    assert info["samples"] == ["demo_00000", "demo_00001"] and info["default_size"] == [64, 64]
    assert info["cluster_counts"] and all(1 <= n <= 4 for n in info["cluster_counts"].values())
    assert info["eraser"] == 0 and info["size_multiple"] == 4


def test_a_sample_arrives_with_its_exact_ids(client, sample):
    reply = client.get("/api/samples/demo_00000").json()
    label = np.frombuffer(base64.b64decode(reply["label"]), np.uint8).reshape(64, 64)
    inst = np.frombuffer(base64.b64decode(reply["inst"]), "<u2").reshape(64, 64)
    np.testing.assert_array_equal(label, sample[0])
    np.testing.assert_array_equal(inst, sample[1])
    assert client.get("/api/samples/nope").status_code == 404


def test_render_matches_the_api_and_is_repeatable(client, synth, sample):
    label, inst = sample
    first = client.post("/api/render", json=body_of(label, inst)).json()
    again = client.post("/api/render", json=body_of(label, inst)).json()
    assert first["images"]["synthesized_image"] == again["images"]["synthesized_image"]
    np.testing.assert_array_equal(decode_png(first["images"]["synthesized_image"]), synth.synthesize(label, inst))
    target = next(int(s) for s in first["clusters"] if int(s) >= 1000)
    other = (first["clusters"][str(target)] + 1) % synth.cluster_count(target // 1000)
    chosen = client.post("/api/render", json=body_of(label, inst, clusters={target: other})).json()
    assert chosen["clusters"][str(target)] == other
    np.testing.assert_array_equal(
        decode_png(chosen["images"]["synthesized_image"]), synth.synthesize(label, inst, clusters={target: other})
    )


def test_variants_are_the_selected_objects_clusters(client, synth, sample):
    label, inst = sample
    target = next(s for s, c in synth.segment_classes(synth.layout(label, inst)).items() if synth.cluster_count(c) > 1)
    reply = client.post("/api/variants", json=body_of(label, inst, instance=target, count=2)).json()
    assert [v["cluster"] for v in reply["variants"]] == [0, 1]
    np.testing.assert_array_equal(
        decode_png(reply["variants"][1]["image"]), synth.synthesize(label, inst, clusters={target: 1})
    )


def test_style_from_a_photo(client, synth, sample, feature_run):
    label, inst = sample
    photo = (feature_run["dataroot"] / "test_img" / "demo_00000.png").read_bytes()
    target = int(next(s for s in np.unique(inst) if s >= 1000))
    reply = client.post(
        "/api/style",
        files={"photo": ("photo.png", photo, "image/png")},
        data={"layout": json.dumps(body_of(label, inst)), "instance": str(target)},
    )
    assert reply.status_code == 200, reply.text
    expected = synth.encode_styles(read_image(io.BytesIO(photo)), synth.layout(label, inst))[target]
    np.testing.assert_allclose(reply.json()["style"], expected, rtol=1e-6)
    styled = client.post("/api/render", json=body_of(label, inst, styles={target: reply.json()["style"]})).json()
    np.testing.assert_array_equal(
        decode_png(styled["images"]["synthesized_image"]), synth.synthesize(label, inst, styles={target: expected})
    )
    bad = client.post(
        "/api/style",
        files={"photo": ("photo.png", photo, "image/png")},
        data={"layout": json.dumps(body_of(label, inst)), "instance": "4242"},
    )
    assert bad.status_code == 400 and bad.json()["detail"] == "instance 4242 is not in the map"


def test_upload_and_downloads_round_trip_through_synths_readers(client, sample):
    label, inst = sample
    files = {
        "label": ("mine.png", encode_label_png(label), "image/png"),
        "inst": ("mine_inst.png", encode_instance_png(inst), "image/png"),
    }
    reply = client.post("/api/upload", files=files)
    assert reply.status_code == 200, reply.text
    layout = reply.json()
    assert layout["name"] == "mine" and (layout["width"], layout["height"]) == (64, 64)
    down_label = client.post("/api/download/label", json=layout)
    down_inst = client.post("/api/download/inst", json=layout)
    assert down_label.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(read_label(io.BytesIO(down_label.content)), label)
    np.testing.assert_array_equal(read_instance(io.BytesIO(down_inst.content)), inst)
    assert client.post("/api/download/photo", json=layout).status_code == 404


def cli_message(tmp_path: Path, label: bytes, inst: bytes | None, name: str, inst_name: str, feature_run) -> str:
    """What ``synth-edit`` prints for the same files (the folder stripped, as an upload has none)."""
    import contextlib

    from synth.commands.edit import main

    (tmp_path / name).write_bytes(label)
    argv = [
        "--name",
        feature_run["name"],
        "--checkpoints_dir",
        str(feature_run["checkpoints"]),
        "--device",
        "cpu",
        "--label",
        str(tmp_path / name),
        "--out",
        str(tmp_path / "out"),
    ]
    if inst is not None:
        (tmp_path / inst_name).write_bytes(inst)
        argv += ["--inst", str(tmp_path / inst_name)]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(argv) == 2
    return err.getvalue().strip().removeprefix("error: ").replace(f"{tmp_path}/", "")


def rgb_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


BAD_UPLOADS = {
    "not an image": (b"certainly not a PNG", "not an image file"),
    "a colour picture": (rgb_png(), "label map has 3 channels"),
    "ids past label_nc": (encode_label_png(np.full((64, 64), 7, np.uint8)), "label id 7 found but --label_nc is 5"),
    "another size than the instance map": (encode_label_png(np.zeros((32, 64), np.uint8)), "differs from its label"),
    "a size G cannot take": (encode_label_png(np.zeros((62, 62), np.uint8)), "is not divisible by 4"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_each_bad_upload_is_a_4xx_with_the_command_lines_line(client, sample, case, tmp_path, feature_run):
    label_bytes, expected = BAD_UPLOADS[case]
    inst = sample[1] if case != "a size G cannot take" else np.zeros((62, 62), np.uint16)
    inst_bytes = encode_instance_png(inst.astype(np.uint16))
    reply = client.post(
        "/api/upload",
        files={"label": ("bad.png", label_bytes, "image/png"), "inst": ("bad_inst.png", inst_bytes, "image/png")},
    )
    assert reply.status_code == 400
    detail = reply.json()["detail"]
    assert expected in detail and "\n" not in detail
    if case == "another size than the instance map":
        assert detail.startswith("bad_inst.png: size 64x64 differs from its label map bad.png")
    assert detail == cli_message(tmp_path, label_bytes, inst_bytes, "bad.png", "bad_inst.png", feature_run)


def test_missing_instance_map_and_oversized_uploads_are_refused(client, sample):
    reply = client.post("/api/upload", files={"label": ("only.png", encode_label_png(sample[0]), "image/png")})
    assert (
        reply.status_code == 400
        and reply.json()["detail"] == "only.png: this model needs the instance map too (--inst)"
    )
    huge = np.random.default_rng(0).integers(0, 5, (1024, 1024)).astype(np.uint8).tobytes()
    reply = client.post("/api/upload", files={"label": ("big.png", huge, "image/png")})
    assert reply.status_code in (400, 413) and "upload limit" in reply.json()["detail"]


def test_bad_render_bodies_are_4xx(client, sample, synth):
    label, inst = sample
    good = body_of(label, inst)
    cases = [
        ({**good, "label": "%%%"}, 400, "label: not base64"),
        ({**good, "width": 32}, 400, "label: holds 4096 ids, expected width*height = 2048"),
        ({**good, "clusters": {4242: 0}}, 400, "layout: instance 4242 is not in the map"),
        ({**good, "width": 0}, 422, None),
    ]
    target = next(int(s) for s in np.unique(inst) if s >= 1000)
    cases.append(({**good, "clusters": {target: 99}}, 400, f"instance {target}: cluster 99 does not exist"))
    for body, status, detail in cases:
        reply = client.post("/api/render", json=body)
        assert reply.status_code == status, (body.keys(), reply.text)
        if detail:
            assert reply.json()["detail"].startswith(detail)
