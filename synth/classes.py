"""The classes of a run as a person sees them: names, colours and which classes are things (countable objects whose
instances get ids ``class * 1000 + k``); Cityscapes' official table, ADE20K's 150, the demo's, numbered otherwise."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.visualize import CITYSCAPES_LABEL_NC, generic_palette

#: ADE20K SceneParsing's 150 classes (objectInfo150, first name of each), in id order 1..150.
ADE20K_NAMES = tuple(
    name.strip()
    for name in """
wall, building, sky, floor, tree, ceiling, road, bed, windowpane, grass, cabinet, sidewalk, person,
earth, door, table, mountain, plant, curtain, chair, car, water, painting, sofa, shelf, house, sea,
mirror, rug, field, armchair, seat, fence, desk, rock, wardrobe, lamp, bathtub, railing, cushion, base,
box, column, signboard, chest of drawers, counter, sand, sink, skyscraper, fireplace, refrigerator,
grandstand, path, stairs, runway, case, pool table, pillow, screen door, stairway, river, bridge,
bookcase, blind, coffee table, toilet, flower, book, hill, bench, countertop, stove, palm, kitchen
island, computer, swivel chair, boat, bar, arcade machine, hovel, bus, towel, light, truck, tower,
chandelier, awning, streetlight, booth, television receiver, airplane, dirt track, apparel, pole, land,
bannister, escalator, ottoman, bottle, buffet, poster, stage, van, ship, fountain, conveyer belt,
canopy, washer, plaything, swimming pool, stool, barrel, basket, waterfall, tent, bag, minibike, cradle,
oven, ball, food, step, tank, trade name, microwave, pot, animal, bicycle, lake, dishwasher, screen,
blanket, sculpture, hood, sconce, vase, traffic light, tray, ashcan, fan, pier, crt screen, plate,
monitor, bulletin board, shower, radiator, glass, clock, flag
""".replace("\n", " ").split(",")
)
#: The ADE20K colours of the CSAIL / mmsegmentation palette, one ``r,g,b`` per class in id order 1..150.
ADE20K_COLORS = """
120,120,120 180,120,120 6,230,230 80,50,50 4,200,3 120,120,80 140,140,140 204,5,255 230,230,230 4,250,7
224,5,255 235,255,7 150,5,61 120,120,70 8,255,51 255,6,82 143,255,140 204,255,4 255,51,7 204,70,3
0,102,200 61,230,250 255,6,51 11,102,255 255,7,71 255,9,224 9,7,230 220,220,220 255,9,92 112,9,255
8,255,214 7,255,224 255,184,6 10,255,71 255,41,10 7,255,255 224,255,8 102,8,255 255,61,6 255,194,7
255,122,8 0,255,20 255,8,41 255,5,153 6,51,255 235,12,255 160,150,20 0,163,255 140,140,140 250,10,15
20,255,0 31,255,0 255,31,0 255,224,0 153,255,0 0,0,255 255,71,0 0,235,255 0,173,255 31,0,255 11,200,200
255,82,0 0,255,245 0,61,255 0,255,112 0,255,133 255,0,0 255,163,0 255,102,0 194,255,0 0,143,255 51,255,0
0,82,255 0,255,41 0,255,173 10,0,255 173,255,0 0,255,153 255,92,0 255,0,255 255,0,245 255,0,102
255,173,0 255,0,20 255,184,184 0,31,255 0,255,61 0,71,255 255,0,204 0,255,194 0,255,82 0,10,255
0,112,255 51,0,255 0,194,255 0,122,255 0,255,163 255,153,0 0,255,10 255,112,0 143,255,0 82,0,255
163,255,0 255,235,0 8,184,170 133,0,255 0,255,92 184,0,255 255,0,31 0,184,255 0,214,255 255,0,112
92,255,0 0,224,255 112,224,255 70,184,160 163,0,255 153,0,255 71,255,0 255,0,163 255,204,0 255,0,143
0,255,235 133,255,0 255,0,235 245,0,255 255,0,122 255,245,0 10,190,212 214,255,0 0,204,255 20,0,255
255,255,0 0,153,255 0,41,255 0,255,204 41,0,255 41,255,0 173,0,255 0,245,255 71,0,255 122,0,255
0,255,184 0,92,255 184,255,0 0,133,255 255,214,0 25,194,194 102,255,0 92,0,255
"""
ADE20K_CLASSES = 150
#: Instance ids of things are ``class * INSTANCE_STRIDE + k`` (Cityscapes' convention); stuff uses the class id.
INSTANCE_STRIDE = 1000
DONTCARE_ID = 255


@dataclass(frozen=True)
class RunClasses:
    """Names, RGB colours and thing flags of classes ``0..label_nc-1``; ``eraser``: the id the eraser paints
    (don't care, 255, when the run has that channel, else class 0)."""

    names: tuple[str, ...]
    colors: np.ndarray
    things: frozenset[int]
    eraser: int

    def as_json(self) -> list[dict]:
        """One ``{id, name, color, thing}`` per class, for the editor page."""
        return [
            {
                "id": i,
                "name": name,
                "color": "#" + "".join(f"{int(c):02x}" for c in self.colors[i]),
                "thing": i in self.things,
            }
            for i, name in enumerate(self.names)
        ]


def ade20k_colors() -> np.ndarray:
    """150 x 3 uint8."""
    return np.array([[int(v) for v in rgb.split(",")] for rgb in ADE20K_COLORS.split()], np.uint8)


def cityscapes_classes() -> tuple[list[str], np.ndarray, set[int]]:
    """Cityscapes' official names, colours and instance classes by labelId (cityscapesscripts' table)."""
    from cityscapesscripts.helpers.labels import labels

    names = [f"class {i}" for i in range(CITYSCAPES_LABEL_NC)]
    colors = generic_palette(CITYSCAPES_LABEL_NC)
    things = set()
    for label in labels:
        if 0 <= label.id < CITYSCAPES_LABEL_NC:
            names[label.id], colors[label.id] = label.name, label.color
            if label.hasInstances:
                things.add(label.id)
    return names, colors, things


def demo_classes(dataroot: str | Path | None) -> tuple[list[str], set[int]] | None:
    """The demo dataset's class names and object classes, when ``dataroot`` holds its metadata.json."""
    from synth.data.demo import DEMO_CLASS_NAMES, METADATA_NAME, THING_CLASSES

    if dataroot is None or not (Path(dataroot) / METADATA_NAME).is_file():
        return None
    return list(DEMO_CLASS_NAMES), set(THING_CLASSES)


def run_classes(opt: argparse.Namespace) -> RunClasses:
    """The class table of a run from its options (label_nc, dataset_mode, dataroot, contain_dontcare_label)."""
    n = opt.label_nc
    eraser = DONTCARE_ID if opt.contain_dontcare_label else 0
    if n == CITYSCAPES_LABEL_NC:
        names, colors, things = cityscapes_classes()
        return RunClasses(tuple(names), colors, frozenset(things), eraser)
    if getattr(opt, "dataset_mode", "") == "ade20k" and n in (ADE20K_CLASSES, ADE20K_CLASSES + 1):
        names, colors = list(ADE20K_NAMES), ade20k_colors()
        if n == ADE20K_CLASSES + 1:  # raw ids: 0 is 'unlabeled'
            names, colors = ["unlabeled", *names], np.concatenate([np.zeros((1, 3), np.uint8), colors])
        return RunClasses(tuple(names), colors, frozenset(), eraser)
    demo = demo_classes(getattr(opt, "dataroot", None))
    colors = generic_palette(max(n, 1))[:n]
    if demo is not None and len(demo[0]) == n:
        return RunClasses(tuple(demo[0]), colors, frozenset(demo[1]), eraser)
    return RunClasses(tuple(f"class {i}" for i in range(n)), colors, frozenset(), eraser)
