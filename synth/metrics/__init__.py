"""Evaluation of synthesized images as in the pix2pixHD / SPADE / OASIS / ECGAN papers.

- ``synth.metrics.fid``: FID (pytorch-fid's FID Inception, Fréchet distance in float64), KID, ``.npz`` statistics;
- ``synth.metrics.segmentation``: confusion matrix with an ignore label, mIoU, pixel accuracy, label-id mappings;
- ``synth.metrics.segmenters``: DRN-D-105 (Cityscapes), UPerNet-101 (ADE20K), torchvision DeepLabV3, TorchScript;
- ``synth.metrics.evaluate``: the pipeline, the papers' table, JSON/CSV and the ``synth-eval`` command.

See docs/evaluation.md.
"""
