"""Self-conditioned fine-tuning (Self-Conditioned GANs, Liu et al., SIGGRAPH 2022) of a modulated generator.

``--model selfcond`` starts from a ``--model modulated`` checkpoint (``--sc_pretrained``) and a pseudo-label file
(``--sc_labels``, written by ``synth-selfcond label``). Every labelled instance's codes (from the pretrained
encoder E, frozen so that the code space and its directions stay fixed) get its attributes' learned low/high
vectors added, weighted by its soft label (``AttributeOffsets``, network ``C``, zero at start: the model first
equals the pretrained one). D gets a per-instance attribute head (network ``H``) trained with KL to the real
instances' soft labels; G is pushed by the same KL on its output to show the labels it was given, and (a term of
ours, ``--lambda_locality``: SC-GAN edits whole images) to leave the image outside an object as it was when the
object's labels change. The training
images are resampled so that the attribute's label bins are about uniform (``sample_weights``).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from synth.core.errors import OptionError
from synth.models.attributes import image_weights, instance_weights
from synth.models.base_model import NeededFile, StepOutput, SuppliedFile
from synth.models.ghfeat_model import GENERATOR_KEYS, adopt_generator_options, generator_state
from synth.models.modulated_model import ModulatedModel
from synth.models.networks.attribute import AttributeHead, AttributeOffsets, attribute_kl
from synth.models.networks.generator_modulated import Codes
from synth.models.networks.instance_pool import MAX_SEGMENT_ID
from synth.models.networks.segments import SegmentIndex, index_segments
from synth.models.networks.vgg import VGG19Features
from synth.models.registry import MODELS

#: Flags taken from the pretrained checkpoint besides G's and D's: the encoder is loaded as well.
PRETRAINED_KEYS = (*GENERATOR_KEYS, "feat_num", "nef", "n_downsample_E")


@MODELS.register("selfcond")
class SelfConditionedModel(ModulatedModel):
    """A modulated model with per-instance attribute conditions: networks G, E (frozen), C, and D, H to train."""

    architecture_keys = (*ModulatedModel.architecture_keys, "sc_attributes")

    @staticmethod
    def add_options(parser: argparse.ArgumentParser, is_train: bool) -> None:
        """The fine-tuning's inputs, loss weights (0.5 for D and G, as the official code) and resampling."""
        ModulatedModel.add_options(parser, is_train)
        g = parser.add_argument_group("self-conditioning")
        g.add_argument("--sc_attributes", type=str, default="",
                       help="attribute names (comma-separated; taken from --sc_labels)")
        if is_train:
            g.add_argument("--sc_pretrained", type=str, default="",
                           help="checkpoint (file or run folder) of the --model modulated run to fine-tune")
            g.add_argument("--sc_labels", type=str, default="", help="pseudo-label file from synth-selfcond label")
            g.add_argument("--lambda_attr", type=float, default=0.5, help="weight of G's attribute KL")
            g.add_argument("--lambda_attr_D", type=float, default=0.5, help="weight of D's attribute KL")
            g.add_argument("--lambda_locality", type=float, default=5.0,
                           help="weight of the L1 change outside an instance whose labels are redrawn (0: SC-GAN's "
                                "losses alone)")
            g.add_argument("--sc_bins", type=int, default=10, help="label bins that resampling makes uniform")
            g.add_argument("--sc_rebalance_attribute", type=str, default="",
                           help="attribute whose bins resampling balances (default: the first)")
            g.add_argument("--no_sc_rebalance", action="store_true", help="sample images uniformly")

    @classmethod
    def needed_files(cls, opt: argparse.Namespace, for_training: bool) -> dict[str, NeededFile]:
        """When training: the pseudo-labels (``--sc_labels``) and, unless continuing, the run to start from."""
        if not for_training:
            return {}
        if not opt.sc_labels:
            raise OptionError("--model selfcond needs --sc_labels (a pseudo-label file from synth-selfcond label)")
        needed = {"pseudo_labels": NeededFile("pseudo_labels", opt.sc_labels, "--sc_labels")}
        if not getattr(opt, "continue_train", False):
            if not opt.sc_pretrained:
                raise OptionError("--model selfcond needs --sc_pretrained (a --model modulated checkpoint)")
            needed["pretrained"] = NeededFile("checkpoint", opt.sc_pretrained, "--sc_pretrained")
        return needed

    def __init__(self, opt: argparse.Namespace, for_training: bool, vgg: VGG19Features | None = None,
                 pseudo_labels: SuppliedFile | None = None, pretrained: SuppliedFile | None = None) -> None:
        pseudo = pseudo_labels.content if pseudo_labels is not None else None
        if pseudo is not None:
            opt.sc_attributes = ",".join(pseudo.attributes)
        if pretrained is not None:
            pretrained = _adopt_pretrained(opt, pretrained)
        if not opt.sc_attributes:
            raise OptionError("--model selfcond needs its attributes (--sc_labels when training)")
        if for_training and opt.no_ganFeat_loss:
            raise OptionError("--model selfcond reads D's intermediate features: drop --no_ganFeat_loss")
        super().__init__(opt, for_training, vgg)
        self.pseudo = pseudo
        self.attributes = opt.sc_attributes.split(",")
        self.netE.requires_grad_(False)
        self.netE.eval()
        self.netC = AttributeOffsets(self.netG.num_codes, len(self.attributes))
        if pretrained is not None:
            for name in ("G", "E", "D"):
                getattr(self, f"net{name}").load_state_dict(pretrained["nets"][name])
        if not for_training:
            return
        self._set_definitions()
        self.netH = AttributeHead(self.netD.scales[0].layers[-2][0].out_channels, len(self.attributes))
        self._set_label_table()

    # ----- pseudo-labels --------------------------------------------------------------------------------------
    def _set_definitions(self) -> None:
        """Copy each attribute's direction and label range into C (saved with the checkpoint, used by edits)."""
        p = self.pseudo
        if p.normals.shape[1] != sum(self.netG.num_codes):
            raise OptionError(f"{self.opt.sc_labels}: directions have {p.normals.shape[1]} dimensions, the "
                              f"generator's codes {sum(self.netG.num_codes)}; label with this model's encoder")
        for name, value in (("normals", p.normals), ("intercepts", p.intercepts), ("lows", p.lows),
                            ("highs", p.highs)):
            getattr(self.netC, name).copy_(torch.as_tensor(np.asarray(value, np.float64)))

    def _set_label_table(self) -> None:
        """Sorted (image number * 2**16 + instance id) keys and their labels, for lookups on the device."""
        p = self.pseudo
        self.key_numbers = {key: n for n, key in enumerate(sorted(set(p.keys)))}
        table = np.array([self.key_numbers[k] for k in p.keys], np.int64) * MAX_SEGMENT_ID + p.ids
        order = np.argsort(table)
        self.register_buffer("label_keys", torch.as_tensor(table[order]), persistent=False)
        self.register_buffer("label_values", torch.as_tensor(p.labels[order], dtype=torch.float32), persistent=False)

    def instance_labels(self, batch: dict, index: SegmentIndex) -> torch.Tensor:
        """[N, A] pseudo-labels of the batch's instances (NaN where an instance has none)."""
        device = self.label_keys.device
        # built on the host and copied without waiting (torch.tensor(..., device=cuda) would sync the stream)
        numbers = torch.tensor([self.key_numbers.get(k, -1) for k in batch["key"]]).to(device, non_blocking=True)
        image_number = numbers[index.image_of()]
        wanted = image_number * MAX_SEGMENT_ID + index.id_of()
        position = torch.searchsorted(self.label_keys, wanted).clamp(max=len(self.label_keys) - 1)
        found = (self.label_keys[position] == wanted) & (image_number >= 0)
        return torch.where(found.unsqueeze(1), self.label_values[position],
                           torch.full_like(self.label_values[position], float("nan")))

    def sample_weights(self, dataset) -> np.ndarray | None:
        """Image weights equal to drawing a labelled instance with uniform label bins and loading its image."""
        if self.opt.no_sc_rebalance:
            return None
        column = self.pseudo.attribute_index(self.opt.sc_rebalance_attribute or self.attributes[0])
        number = {s.key: n for n, s in enumerate(dataset.samples)}
        known = np.array([k in number for k in self.pseudo.keys])
        if not known.any():
            raise OptionError(f"{self.opt.sc_labels}: none of its images is in the training set")
        weights = instance_weights(self.pseudo.labels[known, column], self.opt.sc_bins)
        images = np.array([number[k] for k, ok in zip(self.pseudo.keys, known, strict=True) if ok])
        return image_weights(weights, images, len(dataset.samples))

    # ----- the model ------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> SelfConditionedModel:
        """E stays in eval mode (frozen) whatever mode the rest is put in."""
        super().train(mode)
        self.netE.eval()
        return self

    def networks(self) -> dict[str, nn.Module]:
        nets = {**super().networks(), "C": self.netC}
        if self.for_training:
            nets["H"] = self.netH
        return nets

    def encode_codes(self, real: torch.Tensor, segments: torch.Tensor | SegmentIndex) -> Codes:
        """The frozen encoder's codes (no graph)."""
        with torch.no_grad():
            return self.netE(real, segments)

    def condition(self, codes: Codes, labels: torch.Tensor) -> Codes:
        """Codes with each instance's attribute offsets added (labels [N, A], NaN: none)."""
        return self.run("C", codes, labels)

    def compute_losses(self, batch: dict) -> StepOutput:
        """pix2pixHD's terms on the conditioned reconstruction, plus the attribute KL terms of G and D."""
        semantics, real = self.encode_input(batch)
        if real is None:
            raise ValueError("training needs real images in the batch")
        index = index_segments(self.segment_ids(batch))  # numbered once for the labels, E, G and the head
        labels = self.instance_labels(batch, index)
        codes = self.encode_codes(real, index)
        fake = self.synthesize(semantics, index, self.condition(codes, labels))
        pred_fake, pred_real = self.discriminate(semantics, fake, real)
        out = self.reconstruction_losses(semantics, fake, real, (pred_fake, pred_real))
        out.g_losses["G_attr"] = attribute_kl(self.run("H", pred_fake[0][-2], index), labels) * self.opt.lambda_attr
        out.d_losses["D_attr"] = attribute_kl(self.run("H", pred_real[0][-2], index), labels) * self.opt.lambda_attr_D
        if self.opt.lambda_locality > 0:
            locality = self.locality_loss(semantics, index, codes, labels, fake)
            out.g_losses["G_local"] = locality * self.opt.lambda_locality
        return out

    def locality_loss(self, semantics: torch.Tensor, index: SegmentIndex, codes: Codes, labels: torch.Tensor,
                      fake: torch.Tensor) -> torch.Tensor:
        """Mean L1 change outside one labelled instance per image when its labels are redrawn at random: an edit
        of one object should leave the rest of the image as it was."""
        labelled = ~torch.isnan(labels).all(dim=1)
        scores = torch.where(labelled, torch.rand(labels.shape[0], device=labels.device), -1.0)
        image = index.image_of()
        best = torch.full((fake.shape[0],), -2.0, device=scores.device).scatter_reduce(0, image, scores, "amax")
        chosen = labelled & (scores == best[image])
        redrawn = torch.where(chosen.unsqueeze(1) & ~torch.isnan(labels), torch.rand_like(labels), labels)
        edited = self.synthesize(semantics, index, self.condition(codes, redrawn))
        outside = (~chosen[index.index]).to(fake.dtype)
        return ((edited - fake.detach()).abs() * outside).sum() / (outside.sum() * fake.shape[1]).clamp(min=1)

    def generator_parameters(self, epoch: int) -> Iterator[nn.Parameter]:
        """G and the attribute offsets; E is frozen."""
        return itertools.chain(self.netG.parameters(), self.netC.parameters())

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return itertools.chain(self.netD.parameters(), self.netH.parameters())


def _adopt_pretrained(opt: argparse.Namespace, supplied: SuppliedFile) -> dict:
    """The state of the --model modulated checkpoint to start from, its architecture flags adopted."""
    state = generator_state(supplied)
    for key in PRETRAINED_KEYS:
        if key in state["options"] and key not in GENERATOR_KEYS:
            setattr(opt, key, state["options"][key])
    adopt_generator_options(opt, state["options"], supplied.path)
    return state
