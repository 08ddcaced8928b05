"""The editor's HTTP side: a FastAPI app around one ``synth.api.Run``. Layouts travel losslessly (8-bit
label and 16-bit instance ids as base64 arrays, or PNG uploads read by synth's own readers); the model runs under
one lock in ``torch.inference_mode``; bad input is an HTTP 4xx whose ``detail`` is the command line's one line."""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from synth.api import Layout, Run
from synth.classes import DONTCARE_ID
from synth.core.errors import DataError, SynthError
from synth.data.datasets.base import check_same_size
from synth.data.io import encode_image_png, encode_instance_png, encode_label_png, read_instance, read_label

STATIC = Path(__file__).resolve().parent / "static"
#: Default cap on one request's body (uploads and layouts): 16 MiB holds a 2048x2048 layout with room to spare.
MAX_UPLOAD_BYTES = 16 << 20
#: Default cap on a layout's pixels (the generator's memory grows with it).
MAX_PIXELS = 2048 * 2048


class LayoutBody(BaseModel):
    """A layout as the page holds it: ids in file convention (255 = don't care), little-endian raw arrays."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    label: str  # base64 of width*height uint8
    inst: str | None = None  # base64 of width*height uint16
    clusters: dict[int, int] = {}
    styles: dict[int, list[float]] = {}


class VariantsBody(LayoutBody):
    instance: int
    count: int = Field(default=6, ge=1, le=16)


class SplitSamples:
    """The samples of a split, read on demand as the run's test transform gives them (model ids)."""

    def __init__(self, synth: Run, dataroot: str | None, phase: str) -> None:
        from synth.data import create_dataset

        opt = argparse.Namespace(**vars(synth.opt))
        if dataroot is not None:
            opt.dataroot = dataroot
        opt.phase, opt.size_multiple = phase, synth.size_multiple
        self.dataset = create_dataset(opt)
        self.keys = [sample.key for sample in self.dataset.samples]

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(label, instance map) of sample ``key``."""
        item = self.dataset[self.keys.index(key)]
        return item["label"][0].numpy(), (item["inst"][0].numpy() if "inst" in item else None)


@dataclass
class EditorState:
    """What the app serves: the model (behind ``lock``), the split's samples and the size limits."""

    synth: Run
    samples: SplitSamples | None = None
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_PIXELS
    lock: threading.Lock = field(default_factory=threading.Lock)


def size_text(n: int) -> str:
    """``16 MiB`` / ``256 KiB``."""
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ----- ids <-> the page's arrays --------------------------------------------------------------------------


def file_ids(synth: Run, label: np.ndarray) -> np.ndarray:
    """Model label ids -> file ids (don't care ``label_nc`` -> 255), as the page and the PNGs hold them."""
    if synth.opt.contain_dontcare_label:
        label = np.where(label == synth.label_nc, DONTCARE_ID, label)
    return label


def layout_json(synth: Run, layout: Layout, name: str) -> dict[str, Any]:
    """A layout for the page: size and base64 arrays of file ids (uint8) and instance ids (uint16)."""
    width, height = layout.size
    inst = layout.inst if layout.inst is not None else file_ids(synth, layout.label)
    return {
        "name": name,
        "width": width,
        "height": height,
        "label": base64.b64encode(file_ids(synth, layout.label).astype(np.uint8).tobytes()).decode(),
        "inst": base64.b64encode(inst.astype("<u2").tobytes()).decode(),
    }


def _decode(text: str, dtype: str, count: int, what: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"{what}: not base64") from None
    array = np.frombuffer(raw, dtype=dtype)
    if array.size != count:
        raise DataError(f"{what}: holds {array.size} ids, expected width*height = {count}")
    return array.astype(np.int64)


def body_layout(state: EditorState, body: LayoutBody) -> Layout:
    """The checked layout of a request body."""
    pixels = body.width * body.height
    if pixels > state.max_pixels:
        raise DataError(f"layout {body.width}x{body.height}: more than the {state.max_pixels} pixels this server takes")
    label = _decode(body.label, "u1", pixels, "label").reshape(body.height, body.width)
    inst = _decode(body.inst, "<u2", pixels, "inst").reshape(body.height, body.width) if body.inst else None
    if not state.synth.needs_instance:
        inst = None
    return state.synth.layout(label, inst, name="layout")


def png_data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_image_png(image)).decode()


async def read_upload(state: EditorState, upload: UploadFile) -> io.BytesIO:
    """The upload's bytes as a file named like the upload; DataError past the size cap."""
    data = await upload.read(state.max_upload_bytes + 1)
    name = Path(upload.filename or "upload").name
    if len(data) > state.max_upload_bytes:
        raise DataError(f"{name}: larger than the {size_text(state.max_upload_bytes)} upload limit")
    buffer = io.BytesIO(data)
    buffer.name = name
    return buffer


# ----- the app ------------------------------------------------------------------------------------------------


def info(state: EditorState) -> dict[str, Any]:
    """What the page needs to know about the run."""
    synth, opt = state.synth, state.synth.opt
    classes = synth.classes
    keys = state.samples.keys if state.samples is not None else []
    multiple = synth.size_multiple
    side = max(multiple, round(opt.fineSize / multiple) * multiple)
    size = [side, side]
    if keys:
        height, width = state.samples.get(keys[0])[0].shape
        size = [width, height]
    return {
        "name": opt.name,
        "model": opt.model,
        "label_nc": synth.label_nc,
        "classes": classes.as_json(),
        "eraser": classes.eraser,
        "dontcare": bool(opt.contain_dontcare_label),
        "instance_stride": 1000,
        "uses_instances": synth.needs_instance,
        "uses_features": synth.uses_features,
        "segments": "label" if getattr(opt, "label_feat", False) else "inst",
        "has_clusters": synth.clusters is not None,
        "cluster_counts": {c: synth.cluster_count(c) for c in range(synth.label_nc) if synth.cluster_count(c)},
        "size_multiple": multiple,
        "default_size": size,
        "samples": keys,
        "max_upload_bytes": state.max_upload_bytes,
        "max_pixels": state.max_pixels,
    }


def create_app(state: EditorState) -> FastAPI:
    """The editor's app: the page, its static files and the JSON API (see docs/editor.md)."""
    app = FastAPI(title=f"synth editor: {state.synth.opt.name}", docs_url=None, redoc_url=None)
    app.state.editor = state
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(SynthError)
    async def synth_error(request: Request, exc: SynthError) -> JSONResponse:
        return JSONResponse({"detail": first_line(exc)}, status_code=400)

    @app.middleware("http")
    async def cap_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > state.max_upload_bytes + (1 << 20):
            detail = f"request larger than the {size_text(state.max_upload_bytes)} upload limit"
            return JSONResponse({"detail": detail}, status_code=413)
        return await call_next(request)

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/info")
    def get_info() -> dict[str, Any]:
        return info(state)

    @app.get("/api/samples/{key}")
    def get_sample(key: str) -> dict[str, Any]:
        if state.samples is None or key not in state.samples.keys:
            raise HTTPException(404, f"no sample '{key}' in the served split")
        label, inst = state.samples.get(key)
        return layout_json(state.synth, Layout(label, inst), key)

    @app.post("/api/upload")
    async def upload(
        label: Annotated[UploadFile, File()], inst: Annotated[UploadFile | None, File()] = None
    ) -> dict[str, Any]:
        label_file = await read_upload(state, label)
        inst_file = await read_upload(state, inst) if inst is not None and inst.filename else None
        label_ids = read_label(label_file)
        inst_ids = read_instance(inst_file) if inst_file is not None else None
        if label_ids.size > state.max_pixels:
            raise DataError(f"{label_file.name}: more than the {state.max_pixels} pixels this server takes")
        if inst_ids is None and state.synth.needs_instance:
            raise DataError(f"{label_file.name}: this model needs the instance map too (--inst)")
        names = {"name": label_file.name, "inst_name": inst_file.name if inst_file is not None else None}
        layout = state.synth.layout(label_ids, inst_ids if state.synth.needs_instance else None, **names)
        if inst_ids is not None and not state.synth.needs_instance:
            check_same_size(inst_file.name, inst_ids.shape, label_file.name, layout.label.shape)
            layout = Layout(layout.label, inst_ids, layout.name)
        return layout_json(state.synth, layout, Path(label_file.name).stem)

    @app.post("/api/render")
    def render(body: LayoutBody) -> dict[str, Any]:
        layout = body_layout(state, body)
        with state.lock:
            table = state.synth.feature_table(layout, body.clusters, body.styles) if state.synth.uses_features else {}
            images = state.synth.render(layout, table)
            chosen = state.synth.cluster_choices(layout, body.clusters) if state.synth.clusters else {}
        return {"images": {k: png_data_url(v) for k, v in images.items()}, "clusters": chosen}

    @app.post("/api/variants")
    def variants(body: VariantsBody) -> dict[str, Any]:
        layout = body_layout(state, body)
        with state.lock:
            out = state.synth.variants(layout, body.instance, body.clusters, body.styles, body.count)
        return {"instance": body.instance, "variants": [{"cluster": k, "image": png_data_url(v)} for k, v in out]}

    @app.post("/api/style")
    async def style(
        photo: Annotated[UploadFile, File()], layout: Annotated[str, Form()], instance: Annotated[int, Form()]
    ) -> dict[str, Any]:
        photo_file = await read_upload(state, photo)
        try:
            parsed = body_layout(state, LayoutBody.model_validate_json(layout))
        except ValueError as exc:
            raise DataError(f"layout: not a layout ({first_line(exc)})") from None
        if instance not in state.synth.segment_classes(parsed):
            raise DataError(f"instance {instance} is not in the map")
        with state.lock:
            styles = state.synth.encode_styles(photo_file, parsed)
        return {"instance": instance, "style": [float(v) for v in styles[instance]]}

    @app.post("/api/download/{kind}")
    def download(kind: str, body: LayoutBody) -> Response:
        if kind not in ("label", "inst"):
            raise HTTPException(404, f"no download '{kind}' (label or inst)")
        layout = body_layout(state, body)
        if kind == "label":
            data = encode_label_png(file_ids(state.synth, layout.label))
        else:
            pixels = body.width * body.height
            data = encode_instance_png(_decode(body.inst or "", "<u2", pixels, "inst").reshape(layout.label.shape))
        return Response(
            data, media_type="image/png", headers={"Content-Disposition": f'attachment; filename="{kind}.png"'}
        )

    return app


def build_state(args: argparse.Namespace, flags: list[str]) -> EditorState:
    """Load the run named by ``synth-web``'s flags and the split it offers."""
    synth = Run.load(args.name, args.checkpoints_dir, args.which_epoch, args.device, args.amp, flags=flags)
    samples = None
    if not args.no_samples:
        try:
            samples = SplitSamples(synth, args.dataroot, args.phase)
        except SynthError as exc:
            if args.dataroot is not None:
                raise
            print(f"synth-web: no samples offered ({first_line(exc)}); pass --dataroot, or --no_samples")
    return EditorState(synth, samples, max_upload_bytes=args.max_upload_mb << 20)
