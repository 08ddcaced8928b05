"""A procedural demo dataset in pix2pixHD's folder layout: runs on a CPU in seconds, needs no download.

Each image is a sky/ground scene with striped discs, boxes and triangles. Every object instance carries two
recorded texture factors, a coarse one (hue) and a fine one (stripe frequency), so that later work (instance
texture encoders, style codes, attribute editing) can measure what it recovers against ground truth.

Layout written under ``root``::

    train_label/demo_00000.png   8-bit label ids in [0, DEMO_LABEL_NC)
    train_inst/demo_00000.png    16-bit instance ids: stuff = class id, object = class * 1000 + k
    train_img/demo_00000.png     8-bit RGB image
    test_label/ test_inst/ test_img/   the same for the test split
    metadata.json                config, class names, factor descriptions and per-image instances

Factors (see ``DemoConfig``):

* ``stripe_freq`` is in cycles per 32 pixels (so a stripe period is ``32 / stripe_freq`` px whatever the image
  size) and is drawn as ``stripe_min + (stripe_max - stripe_min) * u ** stripe_tail`` with ``u ~ U(0, 1)``.
  The share of instances in the bottom 30 % of the range is exactly ``P(u ** t < 0.3) = 0.3 ** (1 / t)``:
  0.30 for t = 1 (uniform), 0.69 for t = 3.2, 0.85 for t = 7.4.
* ``hue`` is in [0, 1) (a turn of the colour wheel) and is drawn per object class as
  ``(hue_centres[class - 2] + hue_spread * (u - 0.5)) mod 1``: ``hue_spread = 1`` makes it uniform for
  every class, ``hue_spread = 0`` fixes it per class.
* ``brightness`` multiplies an object's HSV value: a share ``brightness_bottom_share`` of objects uniform over the
  bottom 30 % of ``[brightness_min, 1]``, the rest uniform over the top 70 % (0.85: a long tail whose common part
  is still spread out, so neighbours in it differ visibly, unlike ``u ** 7.4`` which puts half the objects within
  0.6 % of the minimum). With the default ``brightness_min = 1`` it is 1 and nothing is drawn (the default data
  stay as they were). A long-tailed attribute for self-conditioned editing.

Stripe orientation, saturation and base value are fixed per class, so the class stays visible from texture alone.
Generation is deterministic: image ``i`` of a split uses its own ``numpy`` Generator seeded with
``(seed, split, i)``, so the same config gives byte-identical files and images do not depend on each other.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from synth.core.errors import DataError, OptionError

DEMO_LABEL_NC = 5
DEMO_CLASS_NAMES = ("sky", "ground", "disc", "box", "triangle")
SKY, GROUND, DISC, BOX, TRIANGLE = range(DEMO_LABEL_NC)
THING_CLASSES = (DISC, BOX, TRIANGLE)
SPLITS = ("train", "test")
METADATA_NAME = "metadata.json"
METADATA_VERSION = 1
STRIPE_PERIOD_PX = 32.0  # stripe_freq counts cycles per this many pixels

# Fixed per object class (index class - 2): stripe direction (degrees of the wave vector from +x, so 0 gives
# vertical stripes), saturation and value.
STRIPE_ANGLE_DEG = (0.0, 90.0, 45.0)
CLASS_SATURATION = (0.75, 0.6, 0.85)
CLASS_VALUE = (0.95, 0.9, 0.92)


@dataclass(frozen=True)
class DemoConfig:
    """Everything that decides the demo dataset's content; stored in metadata.json to detect stale data."""

    width: int = 128
    height: int = 128
    n_train: int = 200
    n_test: int = 24
    seed: int = 0
    min_objects: int = 2
    max_objects: int = 5
    stripe_min: float = 1.0  # cycles per 32 px
    stripe_max: float = 6.0  # cycles per 32 px; at most 16 (a 2-px period)
    stripe_tail: float = 1.0  # 1 = uniform; larger piles instances up near stripe_min
    hue_centres: tuple[float, float, float] = (0.0, 0.33, 0.67)  # disc, box, triangle
    hue_spread: float = 0.5  # width of the hue interval around each class centre; 1 = uniform
    noise_std: float = 0.01  # Gaussian pixel noise, in [0, 1] intensity units
    brightness_min: float = 1.0  # objects' brightness factor in [brightness_min, 1]; 1 = off (fixed)
    brightness_bottom_share: float = 0.3  # share of objects (uniform) in the bottom 30 % of the range; 0.3 = uniform

    def validate(self) -> None:
        """Raise OptionError naming the first field that is out of range."""
        for name, value in (("width", self.width), ("height", self.height)):
            if value < 16 or value % 16:
                raise OptionError(f"demo {name} must be a positive multiple of 16, got {value}")
        if self.n_train < 1 or self.n_test < 0:
            raise OptionError(f"demo needs n_train >= 1 and n_test >= 0, got {self.n_train} and {self.n_test}")
        if not 0 <= self.min_objects <= self.max_objects <= 999:
            raise OptionError(
                f"demo needs 0 <= min_objects <= max_objects <= 999, got {self.min_objects}..{self.max_objects}"
            )
        if not 0 < self.stripe_min <= self.stripe_max <= 16:
            raise OptionError(
                f"demo needs 0 < stripe_min <= stripe_max <= 16 (cycles per 32 px), "
                f"got {self.stripe_min}..{self.stripe_max}"
            )
        if not self.stripe_tail > 0:
            raise OptionError(f"demo stripe_tail must be > 0, got {self.stripe_tail}")
        if len(self.hue_centres) != len(THING_CLASSES) or not 0 <= self.hue_spread <= 1:
            raise OptionError("demo needs three hue_centres and 0 <= hue_spread <= 1")
        if not 0 < self.brightness_min <= 1 or not 0 <= self.brightness_bottom_share <= 1:
            raise OptionError("demo needs 0 < brightness_min <= 1 and 0 <= brightness_bottom_share <= 1")
        if self.noise_std < 0:
            raise OptionError(f"demo noise_std must be >= 0, got {self.noise_std}")

    def to_json(self) -> dict[str, Any]:
        """The config as plain JSON values (tuples become lists), the form stored in metadata.json."""
        return json.loads(json.dumps(asdict(self)))


# ----------------------------------------------------------------------------------------------- factors


def _wrap_hue(hue: np.ndarray) -> np.ndarray:
    """Hue modulo 1, rounded to 4 decimals, with the 1.0 that rounding can produce folded back to 0."""
    hue = np.round(np.mod(hue, 1.0), 4)
    return np.where(hue >= 1.0, 0.0, hue)


def sample_stripe_freq(rng: np.random.Generator, n: int, config: DemoConfig) -> np.ndarray:
    """Draw n stripe frequencies (cycles per 32 px) as stripe_min + range * u**stripe_tail, rounded to 1e-4."""
    u = rng.random(n)
    freq = config.stripe_min + (config.stripe_max - config.stripe_min) * u**config.stripe_tail
    return np.round(freq, 4)


def sample_hue(rng: np.random.Generator, classes: np.ndarray, config: DemoConfig) -> np.ndarray:
    """Draw one hue in [0, 1) per object class id: the class centre plus a uniform offset of width hue_spread."""
    centres = np.asarray(config.hue_centres, dtype=np.float64)[np.asarray(classes) - DISC]
    return _wrap_hue(centres + config.hue_spread * (rng.random(len(centres)) - 0.5))


def sample_brightness(rng: np.random.Generator, n: int, config: DemoConfig) -> np.ndarray:
    """Draw n brightness factors, piecewise uniform: a share ``brightness_bottom_share`` uniform over the bottom 30 %
    of [brightness_min, 1], the rest over the top 70 % (all 1, drawing nothing, when brightness_min is 1)."""
    if config.brightness_min >= 1:
        return np.ones(n)
    bottom = rng.random(n) < config.brightness_bottom_share
    position = np.where(bottom, 0.3 * rng.random(n), 0.3 + 0.7 * rng.random(n))
    return np.round(config.brightness_min + (1.0 - config.brightness_min) * position, 4)


def stripe_bottom_share(stripe_tail: float, fraction: float = 0.3) -> float:
    """Expected share of stripe frequencies in the bottom `fraction` of [stripe_min, stripe_max]."""
    return fraction ** (1.0 / stripe_tail)


# ----------------------------------------------------------------------------------------------- layout


def _image_rng(config: DemoConfig, split: str, index: int) -> np.random.Generator:
    """A Generator for one image, independent of every other image."""
    return np.random.default_rng([config.seed, SPLITS.index(split), index])


def _object_polygon(rng: np.random.Generator, cls: int, w: int, h: int) -> np.ndarray:
    """Vertices (int32, N x 2) of one disc, box or triangle at a random place and size."""
    size = min(w, h)
    cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.15, 0.95) * h
    r = rng.uniform(0.1, 0.22) * size
    if cls == DISC:
        axes = (int(round(r)), int(round(r * rng.uniform(0.7, 1.0))))
        pts = cv2.ellipse2Poly((int(round(cx)), int(round(cy))), axes, int(rng.integers(0, 180)), 0, 360, 5)
        return pts.astype(np.int32)
    if cls == BOX:
        aspect = rng.uniform(0.6, 1.6)
        hw, hh = r * aspect / 1.2, r / aspect * 1.0
        pts = [(cx - hw, cy - hh), (cx + hw, cy - hh), (cx + hw, cy + hh), (cx - hw, cy + hh)]
    else:
        base = rng.uniform(0, 2 * np.pi)
        angles = base + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.3, 0.3, 3)
        pts = np.stack([cx + 1.2 * r * np.cos(angles), cy + 1.2 * r * np.sin(angles)], axis=1)
    return np.round(np.asarray(pts, dtype=np.float64)).astype(np.int32)


def _draw_layout(rng: np.random.Generator, config: DemoConfig) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Instance-id map (int32) and the drawn objects' factors; later objects occlude earlier ones."""
    w, h = config.width, config.height
    inst = np.full((h, w), SKY, dtype=np.int32)
    horizon = rng.uniform(0.35, 0.6) * h + rng.uniform(-0.15, 0.15) * (np.arange(w) - w / 2)
    inst[np.arange(h)[:, None] >= horizon[None, :]] = GROUND

    n = int(rng.integers(config.min_objects, config.max_objects + 1))
    classes = rng.choice(np.asarray(THING_CLASSES), size=n)
    hues, freqs = sample_hue(rng, classes, config), sample_stripe_freq(rng, n, config)
    phases = np.round(rng.uniform(0, 2 * np.pi, n), 4)
    brightness = sample_brightness(rng, n, config)
    counters = dict.fromkeys(THING_CLASSES, 0)
    objects = []
    mask = np.zeros((h, w), dtype=np.uint8)
    for cls, hue, freq, phase, bright in zip(classes.tolist(), hues.tolist(), freqs.tolist(), phases.tolist(),
                                             brightness.tolist(), strict=True):
        poly = _object_polygon(rng, cls, w, h)
        mask[:] = 0
        cv2.fillPoly(mask, [poly], 1, lineType=cv2.LINE_8)
        ident = cls * 1000 + counters[cls]
        counters[cls] += 1
        inst[mask.astype(bool)] = ident
        y0, y1 = int(poly[:, 1].min()), int(poly[:, 1].max())
        objects.append({"id": ident, "class": cls, "hue": hue, "stripe_freq": freq, "phase": phase,
                        "brightness": bright, "shade_y": (y0, max(y1 - y0, 1))})
    return inst, objects


# ----------------------------------------------------------------------------------------------- rendering


def _stuff_factors(rng: np.random.Generator) -> list[dict[str, Any]]:
    """Per-image hues of sky (blue-ish) and ground (brown to green); stuff has no stripes."""
    sky = float(_wrap_hue(np.array(rng.uniform(0.55, 0.65))))
    ground = float(_wrap_hue(np.array(rng.uniform(0.06, 0.3))))
    return [{"id": SKY, "class": SKY, "hue": sky, "stripe_freq": None},
            {"id": GROUND, "class": GROUND, "hue": ground, "stripe_freq": None}]


def _boundaries(inst: np.ndarray) -> np.ndarray:
    """Boolean map of pixels next to a different instance (4-neighbourhood), as pix2pixHD's edge map."""
    edge = np.zeros(inst.shape, dtype=bool)
    dx = inst[:, 1:] != inst[:, :-1]
    dy = inst[1:, :] != inst[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    return edge


def _render(rng: np.random.Generator, inst: np.ndarray, instances: list[dict[str, Any]],
            noise_std: float) -> np.ndarray:
    """RGB uint8 image: HSV per instance (sky gradient, grainy ground, striped objects), outlines, noise."""
    h, w = inst.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    hue = np.zeros((h, w), np.float32)
    sat = np.zeros((h, w), np.float32)
    val = np.zeros((h, w), np.float32)
    grain = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (3, 3), 0.8)
    for ins in instances:
        m = inst == ins["id"]
        hue[m] = ins["hue"]
        y = ys[m] / h
        if ins["class"] == SKY:
            sat[m], val[m] = 0.55 - 0.35 * y, 0.95 - 0.1 * y
        elif ins["class"] == GROUND:
            sat[m], val[m] = 0.45, 0.45 + 0.2 * y + 0.06 * grain[m]
        else:
            k = ins["class"] - DISC
            theta = np.deg2rad(STRIPE_ANGLE_DEG[k])
            f = ins["stripe_freq"] / STRIPE_PERIOD_PX
            stripes = 0.5 + 0.5 * np.sin(2 * np.pi * f * (xs[m] * np.cos(theta) + ys[m] * np.sin(theta))
                                         + ins["phase"])
            y0, span = ins["shade_y"]
            shade = 1.0 - 0.15 * np.clip((ys[m] - y0) / span, 0.0, 1.0)
            sat[m] = CLASS_SATURATION[k]
            val[m] = CLASS_VALUE[k] * (0.65 + 0.35 * stripes) * shade * ins["brightness"]
    val[_boundaries(inst)] *= 0.6
    hsv = np.stack([hue * 360.0, np.clip(sat, 0, 1), np.clip(val, 0, 1)], axis=-1)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if noise_std > 0:
        rgb = rgb + noise_std * rng.standard_normal(rgb.shape).astype(np.float32)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def _visible_instances(inst: np.ndarray, drawn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drawn instances that kept at least one pixel, with their area and visible bbox [x0, y0, x1, y1)."""
    ids, counts = np.unique(inst, return_counts=True)
    area = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    visible = []
    for ins in drawn:
        if ins["id"] not in area:
            continue
        yy, xx = np.nonzero(inst == ins["id"])
        bbox = [int(xx.min()), int(yy.min()), int(xx.max()) + 1, int(yy.max()) + 1]
        visible.append({**ins, "area": int(area[ins["id"]]), "bbox": bbox})
    return visible


def render_demo_sample(config: DemoConfig, split: str, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                             list[dict[str, Any]]]:
    """One sample (label uint8, instance uint16, RGB uint8, visible instances) from its own seeded Generator."""
    rng = _image_rng(config, split, index)
    inst, objects = _draw_layout(rng, config)
    stuff = _stuff_factors(rng)
    instances = _visible_instances(inst, stuff + objects)
    rgb = _render(rng, inst, instances, config.noise_std)
    label = np.where(inst >= 1000, inst // 1000, inst).astype(np.uint8)
    records = [{k: v for k, v in ins.items() if k != "shade_y"} for ins in instances]
    return label, inst.astype(np.uint16), rgb, records


# ----------------------------------------------------------------------------------------------- files


def _folders(root: Path) -> list[Path]:
    """The six image folders this module owns under root."""
    return [root / f"{split}_{kind}" for split in SPLITS for kind in ("label", "inst", "img")]


def _file_name(index: int) -> str:
    """File name of sample `index`, shared by its label, instance and image files."""
    return f"demo_{index:05d}.png"


def _write_png(path: Path, array: np.ndarray) -> None:
    """Write one PNG with cv2 (deterministic bytes), raising DataError if it fails."""
    if not cv2.imwrite(str(path), array):
        raise DataError(f"could not write {path}")


def _is_complete(root: Path, config: DemoConfig) -> bool:
    """True when root holds metadata for this exact config and every file it lists."""
    try:
        meta = load_demo_metadata(root)
    except DataError:
        return False
    if meta.get("config") != config.to_json():
        return False
    counts = {"train": config.n_train, "test": config.n_test}
    return all(
        (root / f"{split}_{kind}" / _file_name(i)).is_file()
        for split in SPLITS for kind in ("label", "inst", "img") for i in range(counts[split])
    )


def _check_replaceable(root: Path, config: DemoConfig, overwrite: bool) -> None:
    """Raise DataError if root holds something other than this config's (possibly interrupted) demo data."""
    if overwrite or not root.exists():
        return
    if not root.is_dir():
        raise DataError(f"{root} exists and is not a folder")
    meta_path = root / METADATA_NAME
    if meta_path.exists():
        try:
            stored = json.loads(meta_path.read_text()).get("config")
        except (OSError, ValueError, AttributeError):
            stored = None
        if stored != config.to_json():
            differ = sorted(k for k in config.to_json() if not isinstance(stored, dict) or stored.get(k)
                            != config.to_json()[k])
            raise DataError(f"{root} holds a demo dataset with another config (differs in: "
                            f"{', '.join(differ) or 'format'}); pass overwrite=True / --overwrite to replace it")
        return
    ours = {p.name for p in _folders(root)} | {METADATA_NAME + ".tmp"}
    foreign = sorted(p.name for p in root.iterdir() if p.name not in ours)
    if foreign:
        raise DataError(f"{root} is not empty and holds no demo dataset (found {foreign[0]}); "
                        f"pick an empty folder or pass overwrite=True / --overwrite")


def _metadata(config: DemoConfig, images: dict[str, Any]) -> dict[str, Any]:
    """The metadata.json document: config, classes, factor descriptions and per-image instances."""
    return {
        "version": METADATA_VERSION,
        "config": config.to_json(),
        "label_nc": DEMO_LABEL_NC,
        "class_names": list(DEMO_CLASS_NAMES),
        "splits": {"train": config.n_train, "test": config.n_test},
        "instance_ids": "stuff (sky 0, ground 1): id = class; objects: id = class * 1000 + k, k counting drawn "
                        "objects of that class from 0 (a fully occluded one is left out, leaving a gap)",
        "stripe_angle_deg": {DEMO_CLASS_NAMES[c]: STRIPE_ANGLE_DEG[c - DISC] for c in THING_CLASSES},
        "factors": {
            "hue": "coarse factor in [0, 1) (turns of the HSV colour wheel); objects: (hue_centres[class - 2] "
                   "+ hue_spread * (u - 0.5)) mod 1, u ~ U(0, 1); sky U(0.55, 0.65), ground U(0.06, 0.3)",
            "stripe_freq": "fine factor, cycles per 32 px (period 32 / stripe_freq px); objects: stripe_min + "
                           "(stripe_max - stripe_min) * u ** stripe_tail, u ~ U(0, 1); share in the bottom 30 % "
                           "of the range = 0.3 ** (1 / stripe_tail); null for stuff",
            "phase": "stripe phase in radians, U(0, 2 pi), a nuisance factor",
            "brightness": "multiplier of the object's HSV value in [brightness_min, 1]: a share "
                          "brightness_bottom_share uniform over the bottom 30 % of the range, the rest over the "
                          "top 70 % (1 when brightness_min is 1)",
        },
        "instance_fields": "id, class, hue, stripe_freq, phase, brightness (objects only), area (visible pixels), "
                           "bbox [x0, y0, x1, y1) of the visible pixels",
        "images": images,
    }


def _write_dataset(root: Path, config: DemoConfig) -> None:
    """Render and write every sample, then metadata.json last (via a temp file) to mark the set complete."""
    (root / METADATA_NAME).unlink(missing_ok=True)
    for folder in _folders(root):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    images: dict[str, Any] = {}
    for split, count in (("train", config.n_train), ("test", config.n_test)):
        for i in range(count):
            label, inst, rgb, records = render_demo_sample(config, split, i)
            name = _file_name(i)
            _write_png(root / f"{split}_label" / name, label)
            _write_png(root / f"{split}_inst" / name, inst)
            _write_png(root / f"{split}_img" / name, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            images[f"{split}/{name[:-4]}"] = {"instances": records}
    tmp = root / (METADATA_NAME + ".tmp")
    tmp.write_text(json.dumps(_metadata(config, images), indent=1) + "\n")
    os.replace(tmp, root / METADATA_NAME)


def write_demo_dataset(root: str | Path, config: DemoConfig | None, overwrite: bool) -> tuple[Path, bool]:
    """Write the demo dataset like generate_demo_dataset; also say whether anything was written."""
    config = config or DemoConfig()
    config.validate()
    root = Path(root)
    if not overwrite and _is_complete(root, config):
        return root, False
    _check_replaceable(root, config, overwrite)
    root.mkdir(parents=True, exist_ok=True)
    try:
        _write_dataset(root, config)
    except OSError as exc:
        raise DataError(f"could not write the demo dataset under {root}: {exc}") from exc
    return root, True


def generate_demo_dataset(root: str | Path, config: DemoConfig | None = None, overwrite: bool = False) -> Path:
    """Write the demo dataset under root (a no-op if it already holds this config's complete set); return root.

    Raises DataError if root holds other data and overwrite is False; overwrite replaces only the six image
    folders and metadata.json, never other files.
    """
    return write_demo_dataset(root, config, overwrite)[0]


def load_demo_metadata(root: str | Path) -> dict[str, Any]:
    """Read root/metadata.json, raising DataError naming the file if it is missing or not valid JSON."""
    path = Path(root) / METADATA_NAME
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} not found: no complete demo dataset there (run synth-demo-data)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is unreadable: {exc}") from None
    if not isinstance(meta, dict) or "images" not in meta:
        raise DataError(f"{path} is not demo dataset metadata")
    return meta


def instance_factors(root: str | Path, split: str, things_only: bool = True) -> list[dict[str, Any]]:
    """Flat list of the split's instances, each with its image key ('train/demo_00000'); objects only by default."""
    if split not in SPLITS:
        raise DataError(f"unknown demo split {split!r}; expected one of {', '.join(SPLITS)}")
    meta = load_demo_metadata(root)
    rows = []
    for key, entry in meta["images"].items():
        if key.split("/", 1)[0] != split:
            continue
        for ins in entry["instances"]:
            if not things_only or ins["class"] in THING_CLASSES:
                rows.append({"image": key, **ins})
    return rows


# ----------------------------------------------------------------------------------------------- CLI


# ----------------------------------------------------------------------------------------------- measuring


def measure_hue(image: np.ndarray, mask: np.ndarray) -> float:
    """Circular mean hue (turns of the colour wheel) of an RGB uint8 image inside a boolean mask."""
    angle = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)[..., 0][mask].astype(np.float64) / 256.0 * 2 * np.pi
    return float(np.angle(np.exp(1j * angle).mean()) / (2 * np.pi)) % 1.0


def hue_distance(a: float, b: float) -> float:
    """Distance between two hues on the colour wheel, in turns (at most 0.5)."""
    return min(abs(a - b) % 1.0, 1 - abs(a - b) % 1.0)


def measure_brightness(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean HSV value (max of R, G, B) of an RGB uint8 image inside a boolean mask, in [0, 1]."""
    return float(image.max(axis=2)[mask].mean() / 255.0)


__all__ = [
    "DEMO_CLASS_NAMES", "DEMO_LABEL_NC", "DemoConfig", "generate_demo_dataset", "instance_factors",
    "hue_distance", "load_demo_metadata", "measure_brightness", "measure_hue", "render_demo_sample",
    "sample_brightness", "sample_hue", "sample_stripe_freq", "stripe_bottom_share",
]
