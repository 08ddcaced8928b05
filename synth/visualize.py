"""Pictures for people: colourised label maps, tensors to 8-bit images, PNG writing, and an HTML page of results."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synth.core.atomic import atomic_write_bytes, atomic_write_text

CITYSCAPES_LABEL_NC = 35


def cityscapes_palette() -> np.ndarray:
    """Official Cityscapes colours by labelId (cityscapesscripts' label table); 35 x 3 uint8."""
    from cityscapesscripts.helpers.labels import labels

    palette = np.zeros((CITYSCAPES_LABEL_NC, 3), np.uint8)
    for label in labels:
        if 0 <= label.id < CITYSCAPES_LABEL_NC:
            palette[label.id] = label.color
    return palette


def generic_palette(n: int) -> np.ndarray:
    """Distinct colours for any number of classes (bit-interleaved like the PASCAL VOC map); n x 3 uint8."""
    ids = np.arange(n)
    palette = np.zeros((n, 3), np.int64)
    for shift in range(8):
        for channel in range(3):
            bit = (ids >> (3 * shift + channel)) & 1
            palette[:, channel] |= bit << (7 - shift)
    return palette.astype(np.uint8)


def label_palette(label_nc: int) -> np.ndarray:
    """Cityscapes colours when label_nc is 35, else the generic palette; one extra grey row for don't-care."""
    base = cityscapes_palette() if label_nc == CITYSCAPES_LABEL_NC else generic_palette(max(label_nc, 1))
    return np.concatenate([base, np.array([[128, 128, 128]], np.uint8)])


def colorize_label(label: np.ndarray | torch.Tensor, label_nc: int) -> np.ndarray:
    """H x W label ids -> H x W x 3 RGB; ids outside the palette are drawn grey."""
    ids = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    ids = ids.reshape(ids.shape[-2:]).astype(np.int64)
    palette = label_palette(label_nc)
    return palette[np.clip(ids, 0, len(palette) - 1)]


def tensor_to_image(image: torch.Tensor) -> np.ndarray:
    """C x H x W tensor in [-1, 1] -> H x W x 3 uint8 (one channel is repeated)."""
    array = image.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    array = array.permute(1, 2, 0).numpy()
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


def save_png(path: str | Path, array: np.ndarray) -> Path:
    """Write an H x W (x 3) uint8 array as PNG atomically."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def write_html_page(
    path: str | Path, title: str, rows: Sequence[tuple[str, Sequence[tuple[str, str]]]], width: int = 256
) -> Path:
    """A results page: each row is (heading, [(caption, image path relative to the page), ...])."""
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif} figure{display:inline-block;margin:4px} "
        "figcaption{text-align:center;font-size:small}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, images in rows:
        parts.append(f"<h3>{html.escape(heading)}</h3><div>")
        for caption, src in images:
            href = html.escape(src, quote=True)
            parts.append(
                f"<figure><a href='{href}'><img src='{href}' width='{width}'></a>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts) + "\n")
