"""Flag definitions with pix2pixHD's names and defaults, grouped as pix2pixHD groups them (base / train / test).

Each ``add_*`` function only adds flags; parsing, YAML layering and validation live in ``options/parse.py``.
"""

from __future__ import annotations

import argparse

#: Flags that fix a network's shape: stored in every checkpoint, never repeated at test time.
ARCHITECTURE_KEYS: tuple[str, ...] = (
    "model",
    "netG",
    "netD",
    "ngf",
    "n_downsample_global",
    "n_blocks_global",
    "n_local_enhancers",
    "n_blocks_local",
    "use_dropout",
    "norm",
    "label_nc",
    "contain_dontcare_label",
    "no_instance",
    "input_nc",
    "output_nc",
    "ndf",
    "n_layers_D",
    "num_D",
    "no_ganFeat_loss",
    "instance_feat",
    "label_feat",
    "feat_num",
    "nef",
    "n_downsample_E",
    "netE",
    "load_features",
)


def add_base_options(parser: argparse.ArgumentParser) -> None:
    """Flags shared by training and inference: experiment, data, generator architecture, device."""
    g = parser.add_argument_group("experiment")
    g.add_argument("--config", type=str, default=None, help="YAML file of flags (command line wins)")
    g.add_argument("--name", type=str, default="label2city", help="experiment name: checkpoints/NAME, results/NAME")
    g.add_argument("--checkpoints_dir", type=str, default="./checkpoints", help="where runs are saved")
    g.add_argument("--model", type=str, default="pix2pixHD", help="which model computes the losses")
    g.add_argument("--seed", type=int, default=0, help="seed for weights, data order and augmentation")
    g.add_argument("--device", type=str, default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--gpu_ids", type=str, default=None, help="-1: CPU, 0: cuda:0 (overrides --device)")
    g.add_argument("--amp", choices=("none", "bf16", "fp16", "auto"), default="none",
                   help="mixed precision (fp16 needs CUDA; auto: bf16 where the CPU or GPU has native bf16, else none)")
    g.add_argument("--channels_last", action="store_true", help="NHWC memory layout for the networks")
    g.add_argument("--compile", action="store_true", help="torch.compile the networks (slow first step)")
    g.add_argument("--conv_algorithm", choices=("auto", "direct", "winograd"), default="auto",
                   help="the wide res blocks' 3x3 convolutions on the CPU (auto: winograd for bf16 inference; for "
                        "fp32 inference (kernels transformed per call) and training (not on a CPU with AMX) on "
                        "res-block maps of 512 pixels or more, i.e. 512x256 images; direct otherwise; winograd: "
                        "on every map; in fp32 and bf16 training also VGG19's convolutions 256 wide and more; auto "
                        "also runs fp32 CPU inference's transposed convolutions channels-last)")
    g.add_argument("--verbose", action="store_true", help="print the networks")
    g.add_argument("--fp16", action="store_true", help="pix2pixHD spelling of --amp fp16")
    g.add_argument("--data_type", type=int, choices=(8, 16, 32), default=32,
                   help="pix2pixHD spelling: 16 = --amp fp16, 32 = --amp none (8 is not supported)")
    g.add_argument("--local_rank", "--local-rank", type=int, default=None,
                   help="set by python -m torch.distributed.launch (becomes LOCAL_RANK)")
    g.add_argument("--debug", action="store_true",
                   help="pix2pixHD's debug run: 2 samples, print and display every iteration")
    g.add_argument("--display_winsize", type=int, default=512, help="image width on the HTML pages")

    g = parser.add_argument_group("data")
    g.add_argument("--dataroot", type=str, default="./datasets/cityscapes/")
    g.add_argument("--dataset_mode", type=str, default="pix2pixhd", help="pix2pixhd | cityscapes | ade20k | labels")
    g.add_argument("--inst_dir", type=str, default=None, help="instance maps for --dataset_mode labels")
    g.add_argument("--batchSize", type=int, default=1, help="input batch size (per process)")
    g.add_argument("--loadSize", type=int, default=1024, help="scale images to this size")
    g.add_argument("--fineSize", type=int, default=512, help="then crop to this size")
    g.add_argument("--label_nc", type=int, default=35, help="number of input label classes")
    g.add_argument("--contain_dontcare_label", action="store_true", help="label 255 is 'don't care': one more channel")
    g.add_argument("--input_nc", type=int, default=3, help="input image channels when label_nc is 0")
    g.add_argument("--output_nc", type=int, default=3, help="output image channels")
    g.add_argument("--resize_or_crop", type=str, default="scale_width",
                   choices=("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"))
    g.add_argument("--no_flip", action="store_true", help="no random horizontal flip")
    g.add_argument("--serial_batches", action="store_true", help="take samples in order instead of shuffling")
    g.add_argument("--nThreads", type=int, default=2, help="data loader worker processes")
    g.add_argument("--max_dataset_size", type=int, default=0, help="use at most this many samples (0: all)")
    g.add_argument("--no_instance", action="store_true", help="no instance maps as input")
    g.add_argument("--need_edges", action="store_true",
                   help="add Canny edges of the photo to each sample (set by models that use them, e.g. ecgan)")
    g.add_argument("--canny_low", type=float, default=0.075, help="Canny low threshold, fraction of max gradient")
    g.add_argument("--canny_high", type=float, default=0.175, help="Canny high threshold, fraction of max gradient")

    g = parser.add_argument_group("generator")
    g.add_argument("--netG", type=str, default="global", help="global | local")
    g.add_argument("--ngf", type=int, default=64, help="generator filters in the first conv layer")
    g.add_argument("--n_downsample_global", type=int, default=4, help="down-samplings in the global generator")
    g.add_argument("--n_blocks_global", type=int, default=9, help="residual blocks in the global generator")
    g.add_argument("--n_blocks_local", type=int, default=3, help="residual blocks in each local enhancer")
    g.add_argument("--n_local_enhancers", type=int, default=1, help="number of local enhancers")
    g.add_argument("--norm", type=str, default="instance", choices=("instance", "batch"))
    g.add_argument("--use_dropout", action="store_true", help="dropout (p=0.5) in the generator's residual blocks")

    g = parser.add_argument_group("instance features (texture control)")
    g.add_argument("--instance_feat", action="store_true", help="encode per-instance features as extra G input")
    g.add_argument("--label_feat", action="store_true", help="encode per-label-segment features as extra G input")
    g.add_argument("--netE", type=str, default="instance", help="feature encoder")
    g.add_argument("--feat_num", type=int, default=3, help="feature channels per instance")
    g.add_argument("--nef", type=int, default=16, help="encoder filters in the first conv layer")
    g.add_argument("--n_downsample_E", type=int, default=4, help="down-samplings in the encoder")
    g.add_argument("--n_clusters", type=int, default=10, help="K-means clusters per class")
    g.add_argument("--load_features", action="store_true",
                   help="train G on the precomputed feature maps in DATAROOT/PHASE_feat (synth-precompute-features) "
                        "instead of a jointly trained encoder")

    g = parser.add_argument_group("discriminator")
    g.add_argument("--netD", type=str, default="multiscale")
    g.add_argument("--num_D", type=int, default=2, help="number of discriminator scales")
    g.add_argument("--n_layers_D", type=int, default=3, help="layers of each discriminator")
    g.add_argument("--ndf", type=int, default=64, help="discriminator filters in the first conv layer")
    g.add_argument("--no_ganFeat_loss", action="store_true", help="no discriminator feature matching loss")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """Training schedule, losses, checkpoints and logging."""
    g = parser.add_argument_group("schedule")
    g.add_argument("--phase", type=str, default="train")
    g.add_argument("--niter", type=int, default=100, help="epochs at the starting learning rate")
    g.add_argument("--niter_decay", type=int, default=100, help="epochs of linear decay to zero")
    g.add_argument("--niter_fix_global", type=int, default=0, help="epochs training only the local enhancer")
    g.add_argument("--lr", type=float, default=0.0002, help="Adam learning rate")
    g.add_argument("--lr_D", type=float, default=0.0, help="discriminator learning rate (0: same as --lr)")
    g.add_argument("--lr_policy", choices=("linear", "step"), default="linear",
                   help="linear: pix2pixHD's decay over --niter_decay epochs; step: x --lr_gamma every "
                        "--lr_decay_epochs epochs (GH-Feat); either way training lasts --niter + --niter_decay epochs")
    g.add_argument("--lr_decay_epochs", type=int, default=10, help="step policy: epochs between decays")
    g.add_argument("--lr_gamma", type=float, default=0.8, help="step policy: factor applied at each decay")
    g.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    g.add_argument("--beta2", type=float, default=0.999, help="Adam beta2")
    g.add_argument("--adam_impl", choices=("auto", "fused", "foreach", "plain"), default="auto",
                   help="Adam kernel: fused where the device supports it (auto), foreach, or the plain loop")
    g.add_argument("--step_in_backward", choices=("auto", "on", "off"), default="auto",
                   help="update each parameter as backward completes its gradient and free the gradient (same "
                        "update, less memory); auto: on unless --amp fp16 or DDP rules it out")
    g.add_argument("--max_iters", type=int, default=0, help="stop and save after N iterations (0: off)")
    g.add_argument("--continue_train", action="store_true", help="resume from checkpoints/NAME/<which_epoch>.pt")
    g.add_argument("--which_epoch", type=str, default="latest", help="checkpoint to resume: latest or an epoch")
    g.add_argument("--load_pretrain", type=str, default="",
                   help="checkpoint file or run folder of a global generator to start a local enhancer from")

    g = parser.add_argument_group("losses")
    g.add_argument("--gan_mode", choices=("ls", "hinge", "vanilla"), default="ls", help="GAN objective")
    g.add_argument("--no_lsgan", action="store_true", help="pix2pixHD spelling of --gan_mode vanilla")
    g.add_argument("--lambda_feat", type=float, default=10.0, help="weight of feature matching and VGG losses")
    g.add_argument("--no_vgg_loss", action="store_true", help="no VGG19 perceptual loss")
    g.add_argument("--vgg_weights", type=str, default=None, help="VGG19 ImageNet weights (torchvision's file)")

    g = parser.add_argument_group("saving and logging")
    g.add_argument("--save_epoch_freq", type=int, default=10, help="keep a checkpoint every N epochs")
    g.add_argument("--save_latest_freq", type=int, default=1000, help="save latest.pt every N training images")
    g.add_argument("--display_freq", type=int, default=100, help="save visuals every N training images")
    g.add_argument("--print_freq", type=int, default=100, help="log losses every N training images")
    g.add_argument("--no_html", action="store_true", help="no training web page")
    g.add_argument("--no_wandb", action="store_true", help="no wandb logging")
    g.add_argument("--wandb_mode", choices=("offline", "online", "disabled"), default="offline")
    g.add_argument("--wandb_project", type=str, default="synth")
    g.add_argument("--no_progress", action="store_true", help="no progress bar")
    g.add_argument("--tf_log", action="store_true", help="also write TensorBoard event files to checkpoints/NAME/logs")
    g.add_argument("--pool_size", type=int, default=0,
                   help="pix2pixHD's pool of generated images shown to D (0: off)")


def add_test_options(parser: argparse.ArgumentParser) -> None:
    """Batch inference: which checkpoint, which split, where the results page goes."""
    g = parser.add_argument_group("inference")
    g.add_argument("--phase", type=str, default="test")
    g.add_argument("--which_epoch", type=str, default="latest", help="checkpoint: latest or an epoch number")
    g.add_argument("--results_dir", type=str, default="./results/")
    g.add_argument("--how_many", type=int, default=50, help="how many inputs to synthesize")
    g.add_argument("--ntest", type=int, default=None, help="pix2pixHD's max test examples: caps --how_many")
    g.add_argument("--aspect_ratio", type=float, default=1.0, help="saved images resized to width/height = this")
    g.add_argument("--export_onnx", type=str, default=None, help="export the generator to this ONNX file and stop")
    g.add_argument("--onnx", type=str, default=None, help="synthesize through onnxruntime with this ONNX file")
    g.add_argument("--engine", type=str, default=None, help="synthesize through this TensorRT engine file")
    g.add_argument("--use_encoded_image", action="store_true", help="features from the real image via the encoder")
    g.add_argument("--cluster_path", type=str, default=None,
                   help="feature clusters (default checkpoints/NAME/features_clustered_NNN.npz)")
    g.add_argument("--cluster_choice", type=str, nargs="*", default=[],
                   help="CLASS:INDEX pairs fixing the cluster per class (others are sampled with --seed)")
    g.add_argument("--no_progress", action="store_true", help="no progress bar")


def add_safety_options(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """Explicit permissions for what is refused by default: lossy label maps, replacing a run's checkpoints."""
    g = parser.add_argument_group("permissions")
    g.add_argument("--allow_lossy_labels", action="store_true",
                   help="accept JPEG label / instance maps (compression changes ids at edges; refused by default)")
    if is_train:
        g.add_argument("--overwrite", action="store_true",
                       help="start a fresh run over a run folder that has checkpoints (they are deleted)")
