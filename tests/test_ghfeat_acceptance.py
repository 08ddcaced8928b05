"""GH-Feat's acceptance checks at small size on the demo data (coarse factor = hue, fine = stripe frequency),
measured on held-out images: reconstruction against the pooled-encoder baseline trained for the same steps with
the same frozen G, group swaps on the output image, retrieval precision@5 and a linear probe.

64x64 images (at 32x32 the encoder's deepest level, 4x4 cells, cannot see an object's colour apart from its
background's), stripes of 3-9 cycles per 32 px (mostly above the frequency of G's 8-px coarsest cell: the fine
band), a modulated G with its Fourier texture layer, and GH-Feat's codes kept in G's code space."""

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from synth import ghfeat as gf
from synth.data import create_dataset
from synth.data.demo import DISC, STRIPE_ANGLE_DEG, DemoConfig, generate_demo_dataset, instance_factors
from synth.inference import load_generator
from synth.models.pix2pixhd_model import generator_size_multiple
from synth.options import parse_test_options, parse_train_options
from synth.trainer import Trainer
from tests.conftest import modulated_flags

pytestmark = pytest.mark.slow

SIZE, N_TRAIN, N_TEST = 64, 64, 12
STRIPES = (3.0, 9.0)  # cycles per 32 px
G_EPOCHS, E_EPOCHS = 60, 30


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(root, {model name: (model, test batch, train codes, test codes)}) after training G, then both encoders."""
    tmp = tmp_path_factory.mktemp("ghfeat_acceptance")
    root = generate_demo_dataset(tmp / "demo", DemoConfig(width=SIZE, height=SIZE, n_train=N_TRAIN, n_test=N_TEST,
                                                          seed=3, stripe_min=STRIPES[0], stripe_max=STRIPES[1]))
    common = modulated_flags(root, tmp / "ck")
    Trainer(parse_train_options(common + ["--name", "mod", "--model", "modulated", "--niter", str(G_EPOCHS),
                                          "--fourier_texture"])).train()
    out = {}
    for name in ("ghfeat", "ghfeat_baseline"):
        Trainer(parse_train_options(common + ["--name", name, "--model", name, "--niter", str(E_EPOCHS),
                                              "--ghfeat_generator", str(tmp / "ck" / "mod"),
                                              "--ghfeat_code_space", "generator"])).train()
        opt = parse_test_options(["--name", name, "--checkpoints_dir", str(tmp / "ck"), "--device", "cpu"])
        model = load_generator(opt)
        opt.size_multiple = generator_size_multiple(opt)
        test = create_dataset(opt)
        batch = default_collate([test[i] for i in range(len(test))])
        opt.phase = "train"
        train_codes = gf.collect_codes(model, DataLoader(create_dataset(opt), batch_size=8))
        test_codes = gf.collect_codes(model, DataLoader(test, batch_size=8))
        out[name] = (model, batch, train_codes, test_codes)
    return root, out


def _factors(root, split: str, codes: gf.InstanceCodes) -> list[dict | None]:
    """Ground-truth factors of each code row (None for stuff)."""
    rows = {(r["image"].split("/")[1], r["id"]): r for r in instance_factors(root, split)}
    return [rows.get((key, int(i))) for key, i in zip(codes.keys, codes.ids, strict=True)]


def _factor_labels(factors: list[dict | None]) -> np.ndarray:
    """(class, hue sextant, stripe-frequency third) as one integer; -1 for stuff."""
    low, high = STRIPES
    return np.array([f["class"] * 100 + int(f["hue"] * 6) % 6 * 10
                     + min(int((f["stripe_freq"] - low) / (high - low) * 3), 2) if f else -1 for f in factors])


def test_reconstruction_beats_the_pooled_baseline(runs):
    _, out = runs
    mse = {}
    for name, (model, batch, _, _) in out.items():
        enc = gf.encode(model, batch)
        mse[name] = float(((gf.decode(model, enc) - enc.real) ** 2).mean())
    print("reconstruction MSE", mse)
    assert mse["ghfeat"] <= 0.8 * mse["ghfeat_baseline"], mse


def test_retrieval_precision_at_5(runs):
    """Held-out objects query the training set's objects (as ``synth-ghfeat retrieve`` does) by their coarse and
    fine codes, the groups that own the two factors; a hit shares class, hue sextant and stripe third."""
    root, out = runs
    precision, chance = {}, 0.0
    for name, (_, _, train, test) in out.items():
        query_labels = _factor_labels(_factors(root, "test", test))
        gallery_labels = _factor_labels(_factors(root, "train", train))
        queries = np.nonzero(query_labels >= 0)[0]
        groups = ["coarse", "fine"]
        found = gf.retrieve(test.vectors(groups)[queries], train.vectors(groups), 5)
        precision[name] = gf.precision_at_k(found, query_labels[queries], gallery_labels)
        chance = float(np.mean([(gallery_labels == query_labels[i]).mean() for i in queries]))
    print("precision@5", precision, "chance", chance)
    assert precision["ghfeat"] >= precision["ghfeat_baseline"] + 0.10, (precision, chance)
    assert precision["ghfeat"] >= 3 * chance, (precision, chance)


def test_linear_probe_on_held_out_codes(runs):
    root, out = runs
    accuracy = {}
    for name, (_, _, train, test) in out.items():
        train_labels, test_labels = _factor_labels(_factors(root, "train", train)), _factor_labels(
            _factors(root, "test", test))
        keep_train, keep_test = train_labels >= 0, test_labels >= 0
        accuracy[name] = gf.linear_probe(train.vectors()[keep_train], train_labels[keep_train] // 10,
                                         test.vectors()[keep_test], test_labels[keep_test] // 10)
    print("probe accuracy", accuracy)
    assert accuracy["ghfeat"] >= accuracy["ghfeat_baseline"], accuracy


def measured_hue(image: np.ndarray, mask: np.ndarray) -> float:
    """Circular mean hue (turns) of an RGB uint8 image inside a mask."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.float64)
    angle = hsv[..., 0][mask] / 256.0 * 2 * np.pi
    return float(np.angle(np.exp(1j * angle).mean()) / (2 * np.pi)) % 1.0


def measured_stripe_freq(image: np.ndarray, mask: np.ndarray, cls: int) -> float:
    """Stripe frequency (cycles per 32 px) maximising the periodogram of brightness along the class's direction."""
    value = image.max(axis=2).astype(np.float64)[mask]
    ys, xs = np.nonzero(mask)
    theta = np.deg2rad(STRIPE_ANGLE_DEG[cls - DISC])
    position = xs * np.cos(theta) + ys * np.sin(theta)
    freqs = np.linspace(STRIPES[0] - 1, STRIPES[1] + 1, 65)
    power = [abs(((value - value.mean()) * np.exp(-2j * np.pi * f / 32 * position)).mean()) for f in freqs]
    return float(freqs[int(np.argmax(power))])


def _hue_distance(a: float, b: float) -> float:
    return min(abs(a - b), 1 - abs(a - b))


def test_swapping_a_group_moves_its_factor(runs):
    """Coarse swap: hue goes to the donor, stripes stay; fine swap: the reverse (same-class pairs of held-out
    objects whose factors differ clearly), judged on the output image."""
    root, out = runs
    model, batch, _, _ = out["ghfeat"]
    enc = gf.encode(model, batch)
    factors = {(key, r["id"]): r for r in instance_factors(root, "test")
               for key in [r["image"].split("/")[1]]}
    rows = [(row, b, i) for row, (b, i) in enumerate(zip(enc.index.image_of().tolist(), enc.index.id_of().tolist(),
                                                             strict=True))
            if (batch["key"][b], i) in factors and (enc.segments[b] == i).sum() >= 40]
    success = {"coarse": [], "fine": []}
    for row_r, b_r, i_r in rows:
        for row_d, b_d, i_d in rows:
            f_r, f_d = factors[(batch["key"][b_r], i_r)], factors[(batch["key"][b_d], i_d)]
            if b_r == b_d or f_r["class"] != f_d["class"]:
                continue
            if _hue_distance(f_r["hue"], f_d["hue"]) < 0.15 or abs(f_r["stripe_freq"] - f_d["stripe_freq"]) < 2:
                continue
            mask = (enc.segments[b_r, 0] == i_r).cpu().numpy()
            for group in success:
                mixed = gf.mix_codes(enc.codes, enc.codes, model.netG.group_layers[group], [(row_r, row_d)])
                image = _to_image(gf.decode(model, enc, mixed)[b_r])
                hue, freq = measured_hue(image, mask), measured_stripe_freq(image, mask, f_r["class"])
                hue_to_donor = _hue_distance(hue, f_d["hue"]) < _hue_distance(hue, f_r["hue"])
                freq_to_donor = abs(freq - f_d["stripe_freq"]) < abs(freq - f_r["stripe_freq"])
                success[group].append(hue_to_donor and not freq_to_donor if group == "coarse"
                                      else freq_to_donor and not hue_to_donor)
    assert len(success["coarse"]) >= 5
    rates = {g: float(np.mean(v)) for g, v in success.items()}
    print("swap success", rates, "pairs", len(success["coarse"]))
    assert rates["coarse"] >= 0.9 and rates["fine"] >= 0.9, (rates, len(success["coarse"]))


def _to_image(tensor: torch.Tensor) -> np.ndarray:
    from synth.visualize import tensor_to_image

    return tensor_to_image(tensor)
