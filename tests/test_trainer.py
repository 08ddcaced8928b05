"""The training loop: learning-rate schedule, a loss that falls, exact resume, staged local-enhancer training."""

import pytest
import torch

from synth.backward_step import use_step_in_backward
from synth.checkpoint import load_checkpoint
from synth.core.errors import OptionError
from synth.options import parse_train_options
from synth.trainer import EpochSampler, Trainer, learning_rate
from tests.conftest import tiny_flags


def test_learning_rate_schedule_matches_pix2pixhd():
    opt = parse_train_options(["--niter", "2", "--niter_decay", "4", "--lr", "1.0"])
    # constant for niter epochs and the first decay epoch, then down by lr/niter_decay per epoch
    assert [learning_rate(opt, e) for e in range(1, 7)] == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25]


def test_step_learning_rate_policy_decays_by_gamma_every_n_epochs():
    opt = parse_train_options(["--niter", "6", "--niter_decay", "0", "--lr", "1.0", "--lr_policy", "step",
                               "--lr_decay_epochs", "2", "--lr_gamma", "0.5"])
    assert [learning_rate(opt, e) for e in range(1, 7)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert learning_rate(opt, 3, "D") == 0.5


def test_ghfeat_defaults_to_step_decay_by_0_8():
    opt = parse_train_options(["--model", "ghfeat", "--lr_decay_epochs", "1"])
    assert (opt.lr_policy, opt.lr_gamma, opt.lr) == ("step", 0.8, 1e-4)
    assert [learning_rate(opt, e) for e in (1, 2, 3)] == pytest.approx([1e-4, 8e-5, 6.4e-5], rel=1e-12)
    assert parse_train_options([]).lr_policy == "linear"


def test_epoch_sampler_is_fixed_by_seed_and_epoch_and_skips():
    sampler = EpochSampler(10, seed=3, shuffle=True)
    sampler.set_epoch(2)
    full = list(sampler)
    assert sorted(full) == list(range(10))
    sampler.set_epoch(2, skip=4)
    assert list(sampler) == full[4:] and len(sampler) == 6
    sampler.set_epoch(3)
    assert list(sampler) != full


def test_generator_loss_falls_on_a_fixed_batch(demo_root, tmp_path):
    opt = parse_train_options(tiny_flags(demo_root, tmp_path) + ["--lr", "0.002"])
    trainer = Trainer(opt)
    batch = next(iter(trainer.loader))
    real = batch["image"]

    def l1() -> float:
        with torch.no_grad():
            fake = trainer.model(trainer.model.encode_input(batch)[0])
        return (fake - real).abs().mean().item()

    before = l1()
    for _ in range(40):
        out = trainer.train_step(batch)
    assert set(out.g_losses) == {"G_GAN", "G_GAN_Feat"} and set(out.d_losses) == {"D_fake", "D_real"}
    assert l1() < 0.8 * before


def test_step_updates_only_what_each_loss_should(demo_root, tmp_path):
    """G terms move G, D terms move D; with a zero D learning rate D must not move at all."""
    opt = parse_train_options(tiny_flags(demo_root, tmp_path))
    trainer = Trainer(opt)
    for group in trainer.optimizers["D"].param_groups:
        group["lr"] = 0.0
    g_before = [p.clone() for p in trainer.model.netG.parameters()]
    d_before = [p.clone() for p in trainer.model.netD.parameters()]
    trainer.train_step(next(iter(trainer.loader)))
    assert all(torch.equal(a, b) for a, b in zip(d_before, trainer.model.netD.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(g_before, trainer.model.netG.parameters(), strict=True))


def _weights(path):
    return load_checkpoint(path)["nets"]


@pytest.mark.parametrize("stop_at", [3, 5])
def test_resume_continues_exactly(demo_root, tmp_path, stop_at):
    """Stopped at any iteration (mid-epoch or at an epoch end) and resumed: same weights as without a stop."""
    # 8 images, batch 2 -> 4 iterations per epoch, 2 epochs (the second with a decayed learning rate)
    straight = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "a")))
    last = straight.train()
    first = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "b") + ["--max_iters", str(stop_at)]))
    first.train()
    resumed = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "b") + ["--continue_train"]))
    assert resumed.total_iters == stop_at
    resumed_last = resumed.train()
    a, b = _weights(last), _weights(resumed_last)
    for net in ("G", "D"):
        for key in a[net]:
            torch.testing.assert_close(a[net][key], b[net][key], rtol=0, atol=1e-6, msg=f"{net}.{key}")
    assert load_checkpoint(resumed_last)["progress"] == load_checkpoint(last)["progress"]


def test_run_folder_contents(demo_root, tmp_path):
    Trainer(parse_train_options(tiny_flags(demo_root, tmp_path))).train()
    run = tmp_path / "tiny"
    assert {"opt.yaml", "latest.pt", "epoch_002.pt", "loss_log.txt", "web"} <= {p.name for p in run.iterdir()}
    assert "G_GAN_Feat" in (run / "loss_log.txt").read_text()
    page = (run / "web" / "index.html").read_text()
    assert "synthesized_image" in page and "input_label" in page and "real_image" in page


@pytest.mark.parametrize("enhancers", [1, 2])
def test_local_enhancer_trains_only_the_outermost_enhancer_first(demo_root, tmp_path, enhancers):
    """pix2pixHD's --niter_fix_global: only the full-resolution enhancer trains (with two, the inner one and the
    global part stay fixed), then all of G."""
    flags = tiny_flags(demo_root, tmp_path) + ["--netG", "local", "--n_local_enhancers", str(enhancers),
                                               "--n_blocks_local", "1", "--niter_fix_global", "1"]
    trainer = Trainer(parse_train_options(flags))
    net = trainer.model.netG
    outermost = {id(p) for p in net.enhancers[-1].parameters()}
    assert {id(p) for p in trainer.g_params} == outermost
    fixed = {name: p.detach().clone() for name, p in net.named_parameters() if id(p) not in outermost}
    assert any(name.startswith("global_net.") for name in fixed)
    assert (enhancers == 2) == any(name.startswith("enhancers.0.") for name in fixed)
    trained = {name: p.detach().clone() for name, p in net.named_parameters() if id(p) in outermost}
    trainer.opt.max_iters = 4  # the whole first epoch
    trainer.train()
    now = dict(net.named_parameters())
    assert all(torch.equal(value, now[name]) for name, value in fixed.items())
    assert any(not torch.equal(value, now[name]) for name, value in trained.items())
    # after epoch 1 every part of G trains
    resumed = Trainer(parse_train_options(flags + ["--continue_train"]))
    resumed.train()
    assert {id(p) for p in resumed.model.netG.parameters()} == {id(p) for p in resumed.g_params}


def test_bf16_autocast_step_on_cpu(demo_root, tmp_path):
    trainer = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path) + ["--amp", "bf16"]))
    batch = next(iter(trainer.loader))
    before = [p.clone() for p in trainer.model.netG.parameters()]
    out = trainer.train_step(batch)
    assert out.fake.dtype == torch.bfloat16  # the generator ran under autocast
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # weights stay float32
    assert all(torch.isfinite(v).all() for v in {**out.g_losses, **out.d_losses}.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.netG.parameters(), strict=True))


def test_bf16_discriminator_input_is_built_in_bf16_channels_last_with_the_same_outputs(demo_root, tmp_path):
    trainer = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path) + ["--amp", "bf16"]))
    model = trainer.model
    semantics, real = model.encode_input(next(iter(trainer.loader)))
    seen = []
    hook = model.netD.register_forward_pre_hook(
        lambda module, args: seen.append((args[0].dtype, args[0].is_contiguous(memory_format=torch.channels_last))))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fake = model.netG(model.generator_input(semantics))
        pred_fake, pred_real = model.discriminate(semantics, fake, real)
        hook.remove()
        # what D computed before: fp32 pairs, cast to bf16 by autocast at D's first convolution
        old_fake = model.netD(torch.cat([semantics, fake.float()], 1))
        old_real = model.netD(torch.cat([semantics, real], 1))
    # no fp32 copy of either pair (nor of its gradient), and both built channels-last, as D runs on the CPU
    assert seen == [(torch.bfloat16, True), (torch.bfloat16, True)]
    for new_layer, old_layer in zip(pred_fake[0] + pred_real[0], old_fake[0] + old_real[0], strict=True):
        assert torch.equal(new_layer, old_layer)  # full-resolution D: bit for bit


def test_generator_terms_back_propagate_through_the_fake_pass_only(demo_root, tmp_path):
    """D sees the fake and the real pair in two passes of the batch's size; only the fake one carries G's graph,
    so G's backward computes no gradient through the real pair (as one stacked pass of both made it do)."""
    trainer = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path)))
    model = trainer.model
    batch = next(iter(trainer.loader))
    calls = []
    hook = model.netD.register_forward_pre_hook(lambda module, args: calls.append(
        (args[0].shape[0], args[0].requires_grad)))
    out = model.compute_losses(batch)
    hook.remove()
    n = batch["label"].shape[0]
    assert calls == [(n, True), (n, False)]
    semantics, real = model.encode_input(batch)
    with torch.no_grad():
        stacked = model.netD(torch.cat([torch.cat([semantics, out.fake], 1), torch.cat([semantics, real], 1)], 0))
        pred_fake, pred_real = model.discriminate(semantics, out.fake, real)
    for scale, (fake_scale, real_scale) in enumerate(zip(pred_fake, pred_real, strict=True)):
        for layer, (f, r) in enumerate(zip(fake_scale, real_scale, strict=True)):
            # instance norm is per sample: the same outputs as one stacked pass, to float rounding
            torch.testing.assert_close(f, stacked[scale][layer][:n], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(r, stacked[scale][layer][n:], rtol=1e-5, atol=1e-5)


def test_channels_last_gives_the_same_step(demo_root, tmp_path):
    plain = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "a")))
    nhwc = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "b") + ["--channels_last"]))
    batch = next(iter(plain.loader))
    a, b = plain.train_step(batch), nhwc.train_step(batch)
    torch.testing.assert_close(a.fake, b.fake, rtol=1e-4, atol=1e-5)
    losses_a, losses_b = a.g_losses | a.d_losses, b.g_losses | b.d_losses
    for name in losses_a:
        torch.testing.assert_close(losses_a[name], losses_b[name], rtol=1e-4, atol=1e-5)
    # (parameters are not compared after the step: Adam turns round-off in near-zero gradients into +-lr moves)
    assert nhwc.model.netG.stem[1].weight.is_contiguous(memory_format=torch.channels_last)


def test_vgg_loss_trains_with_local_weights_file(demo_root, tmp_path):
    """The perceptual loss loads torchvision's VGG19 file from --vgg_weights (random weights stand in)."""
    import torchvision

    weights = tmp_path / "vgg19.pth"
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), weights)
    flags = [f for f in tiny_flags(demo_root, tmp_path) if f != "--no_vgg_loss"] + ["--vgg_weights", str(weights)]
    trainer = Trainer(parse_train_options(flags))
    out = trainer.train_step(next(iter(trainer.loader)))
    assert "G_VGG" in out.g_losses and out.g_losses["G_VGG"].item() > 0
    assert not any(p.requires_grad for p in trainer.model.vgg_loss.parameters())


@pytest.mark.parametrize("choice", ["on", "off"])
def test_stepping_in_backward_never_holds_more_than_one_gradient(demo_root, tmp_path, choice):
    """With --step_in_backward on each parameter's gradient is used and freed before the next one completes; off,
    they pile up until the step. Either way no gradient is left after the step."""
    trainer = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path) + ["--step_in_backward", choice]))
    params = trainer.g_params + trainer.d_params
    live = []
    handles = [p.register_post_accumulate_grad_hook(  # runs after the trainer's own hook
        lambda _: live.append(sum(q.grad is not None for q in params))) for p in params]
    trainer.train_step(next(iter(trainer.loader)))
    for handle in handles:
        handle.remove()
    assert len(live) == len(params)
    if choice == "on":
        assert max(live) == 0
        assert all(p.grad is None for p in params)
    else:
        assert max(live) == len(params)


def test_step_output_holds_no_graph(demo_root, tmp_path):
    """The loop keeps the last step's output through the next step: it must not keep that step's graph alive."""
    trainer = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path)))
    out = trainer.train_step(next(iter(trainer.loader)))
    tensors = [*out.g_losses.values(), *out.d_losses.values(), out.fake, *out.visuals.values()]
    assert all(t.grad_fn is None for t in tensors)


@pytest.mark.parametrize("amp, distributed, blocker", [("fp16", False, "--amp fp16"), ("none", True, "DDP")])
def test_stepping_in_backward_on_refuses_what_needs_all_gradients(amp, distributed, blocker):
    with pytest.raises(OptionError, match=f"--step_in_backward on cannot apply with {blocker}"):
        use_step_in_backward("on", amp, distributed)
    assert use_step_in_backward("auto", amp, distributed) is False
    assert use_step_in_backward("auto", "none", False) is True and use_step_in_backward("off", "none", False) is False
