"""Serving the editor and driving its page with Playwright (Debian's Chromium), shared by
tests/test_web_browser.py and tests/web_screenshot.py (docs/editor.md's screenshot)."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

READY = "() => window.editor && window.editor.renders > 0 && window.editor.idle()"
CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1500, "height": 900}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(app, port: int | None = None) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 in a thread; yields its URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the editor's server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def editor_app(run, dataroot: str | Path | None = None, phase: str = "test"):
    """``synth-web``'s app for ``run``, offering the samples of ``dataroot``'s ``phase`` split (default: the
    run's own --dataroot)."""
    from synth.web.server import EditorState, SplitSamples, create_app

    return create_app(EditorState(run, SplitSamples(run, None if dataroot is None else str(dataroot), phase)))


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium browser (Debian's, at CHROMIUM) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class EditorPage:
    """One browser tab on the editor, with the gestures a person makes and readers of what the page shows."""

    def __init__(self, page, url: str, downloads: Path) -> None:
        self.page = page
        self.url = url
        self.downloads = downloads

    def open(self) -> None:
        self.page.goto(self.url)
        self.wait_ready()

    def wait_ready(self) -> None:
        """Until the latest edit's image is shown and nothing is pending (variants included)."""
        self.page.wait_for_timeout(50)
        self.page.wait_for_function(READY, timeout=30_000)

    # ----- reading the page ------------------------------------------------------------------------------
    def result_bytes(self) -> bytes:
        """The PNG bytes the result image shows."""
        url = self.page.locator("#result").get_attribute("src")
        return base64.b64decode(url.split(",", 1)[1])

    def result(self) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(self.result_bytes())).convert("RGB"))

    def layout(self) -> tuple[np.ndarray, np.ndarray]:
        """(label ids, instance ids) the page holds."""
        w, h, label, inst = self.page.evaluate(
            "() => [editor.w, editor.h, Array.from(editor.label), Array.from(editor.inst)]"
        )
        return np.array(label, np.int64).reshape(h, w), np.array(inst, np.int64).reshape(h, w)

    # ----- gestures --------------------------------------------------------------------------------------
    def point(self, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of layout pixel (x, y)'s centre."""
        box = self.page.locator("#layout-canvas").bounding_box()
        w, h = self.page.evaluate("() => [editor.w, editor.h]")
        return box["x"] + (x + 0.5) * box["width"] / w, box["y"] + (y + 0.5) * box["height"] / h

    def choose_class(self, cls: int) -> None:
        self.page.locator(f'#palette button[data-cls="{cls}"]').click()

    def choose_tool(self, tool: str) -> None:
        self.page.locator(f'button[data-tool="{tool}"]').click()

    def stroke(self, points: Sequence[tuple[int, int]], size: int = 6, tool: str = "brush") -> None:
        self.choose_tool(tool)
        self.page.locator("#brush-size").fill(str(size))
        mouse = self.page.mouse
        mouse.move(*self.point(*points[0]))
        mouse.down()
        for x, y in points[1:]:
            mouse.move(*self.point(x, y), steps=8)
        mouse.up()
        self.wait_ready()

    def select_instance(self, x: int, y: int) -> None:
        self.choose_tool("instance")
        self.page.mouse.click(*self.point(x, y))
        self.wait_ready()

    def choose_cluster(self, index: int) -> None:
        self.page.locator("#sel-cluster").select_option(str(index))
        self.wait_ready()

    def choose_farthest_cluster(self, centers: np.ndarray) -> int:
        """Give the selected object the cluster whose centre is farthest (L1) from its current one; its index."""
        current = int(self.page.locator("#sel-cluster").input_value())
        farthest = int(np.argmax(np.abs(centers - centers[current]).sum(1)))
        self.choose_cluster(farthest)
        return farthest

    def upload(self, label: Path, inst: Path | None, expect_error: bool = False) -> None:
        self.page.locator("#upload-label").set_input_files(str(label))
        self.page.locator("#upload-inst").set_input_files(str(inst) if inst else [])
        renders = self.page.evaluate("() => editor.renders")
        self.page.locator("#upload").click()
        if expect_error:
            self.page.locator("#error").wait_for(state="visible")
            return
        self.page.wait_for_function(f"() => editor.renders > {renders}")
        self.wait_ready()

    def load_sample(self, key: str) -> None:
        """Open sample ``key`` of the served split."""
        renders = self.page.evaluate("() => editor.renders")
        self.page.locator("#sample").select_option(key)
        self.page.locator("#load-sample").click()
        self.page.wait_for_function(f"() => editor.renders > {renders}")
        self.wait_ready()

    def download(self, button: str, path: Path) -> Path:
        with self.page.expect_download() as info:
            self.page.locator(button).click()
        info.value.save_as(path)
        return path

    def screenshot(self, path: str | Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)

    def screenshot_if_asked(self) -> None:
        """Save the page to ``$SYNTH_EDITOR_SCREENSHOT`` when set (to look at a failing test's page)."""
        target = os.environ.get("SYNTH_EDITOR_SCREENSHOT")
        if target:
            self.screenshot(target)


def inside_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel of ``mask`` nearest its centroid (inside it for the demo's convex objects)."""
    ys, xs = np.nonzero(mask)
    nearest = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return int(xs[nearest]), int(ys[nearest])
