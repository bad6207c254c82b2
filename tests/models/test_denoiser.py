"""The denoiser: presets × conditionings, preconditioning, the zero operator, gradients, dtypes."""

import json
import logging

import pytest
import torch

from invfussion import degradations as deg
from invfussion import models
from invfussion.models.hdit import SelfAttentionBlock
from invfussion.models.invfussion import JointAttentionBlock

# Shrunken versions of each preset: the same levels, attention kinds and FDL layout, tiny widths.
SMALL = {
    "mnist32": {"widths": [32, 64], "d_head": 16, "mapping_width": 32},
    "ffhq64": {"widths": [48, 96, 192], "depths": [1, 1, 1], "d_head": 16, "mapping_width": 32},
    "imagenet64": {"widths": [48, 96, 192], "depths": [1, 1, 1], "d_head": 16, "mapping_width": 32},
    "ffhq256": {
        "img_resolution": 64,
        "widths": [48, 192, 64, 64],
        "depths": [1, 1, 1, 1],
        "d_head": 16,
        "mapping_width": 32,
        "fdl_levels": [True, True, False, False],
    },
}
MIXTURE = deg.Mixture(["matrix:rows=32", "motion-blur:stride=2", "inpaint-patches", "none"])


def small(preset="mnist32", conditioning="invfussion", **extra):
    return models.build(preset, conditioning, **{**SMALL[preset], **extra})


def perturbed(net, scale=0.05):
    """Break the zero-init so every parameter influences the output."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return net


def problem(net, batch=4, seed=0):
    shape = (net.img_channels, net.img_resolution, net.img_resolution)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *shape, generator=gen) * 2 - 1
    op = MIXTURE.sample(batch, shape, seed=seed)
    y = op.measure(x, seed=seed)
    sigma = torch.exp(torch.randn(batch, generator=gen) * 1.2 - 0.5)
    return x, x + sigma[:, None, None, None] * torch.randn(x.shape, generator=gen), sigma, op, y


@pytest.mark.parametrize("preset", list(SMALL))
@pytest.mark.parametrize("conditioning", ["invfussion", "palette", "unconditional"])
def test_shapes_for_every_preset_and_conditioning(preset, conditioning):
    net = small(preset, conditioning)
    x, xn, sigma, op, y = problem(net, batch=2)
    labels = torch.tensor([0, 999]) if net.num_classes else None
    out, logvar = net(xn, sigma, op, y, class_labels=labels, return_logvar=True)
    assert out.shape == x.shape and logvar.shape == (2,)
    assert torch.isfinite(out).all()
    assert net.conditioning == conditioning
    assert net.num_classes == (1000 if preset == "imagenet64" else 0)
    rebuilt = models.build(**json.loads(json.dumps(net.config)))
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in net.state_dict().items()
    }


def test_fresh_network_output_is_the_skip_path():
    net = small(pcs=2)
    _, xn, sigma, op, y = problem(net)
    out, w, logvar = net(xn, sigma, op, y, return_pcs=True, return_logvar=True)
    c_skip = 0.25 / (sigma**2 + 0.25)
    torch.testing.assert_close(out, c_skip[:, None, None, None] * xn, rtol=0, atol=0)
    assert w.shape == (4, 2, 1, 32, 32) and not logvar.any()
    # NPPC directions start small but non-zero: Gram–Schmidt needs a direction to follow.
    assert bool(w.detach().flatten(2).norm(dim=2).gt(0).all()) and float(w.detach().abs().max()) < 1.0


@pytest.mark.parametrize("conditioning", ["invfussion", "palette"])
def test_no_operator_equals_the_zero_operator(conditioning):
    net = perturbed(small(conditioning=conditioning))
    x, xn, sigma, _, _ = problem(net)
    zero = deg.from_spec("none", (1, 32, 32), batch=4, seed=0)
    torch.testing.assert_close(
        net(xn, sigma), net(xn, sigma, zero, zero.measure(x)), rtol=0, atol=1e-6
    )


def test_mixed_batch_equals_each_example_alone():
    net = perturbed(small())
    x, xn, sigma, op, y = problem(net, batch=6, seed=2)
    batched = net(xn, sigma, op, y)
    for i in range(6):
        op_i = MIXTURE.sample(None, (1, 32, 32), seed=2, indices=[i])
        alone = net(xn[i : i + 1], sigma[i : i + 1], op_i, op_i.measure(x[i : i + 1], seed=2))
        # the measurement noise stream of example i is the same whichever batch it sits in
        torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("conditioning", ["invfussion", "palette", "unconditional"])
def test_gradients_reach_every_parameter(conditioning):
    net = perturbed(small(conditioning=conditioning, num_classes=10, pcs=1))
    _, xn, sigma, op, y = problem(net)
    labels = torch.tensor([0, 3, 10, 7])
    aug = torch.randn(4, net.backbone.mapping.augment_dim)
    out, w, logvar = net(
        xn, sigma, op, y, class_labels=labels, aug_labels=aug, return_pcs=True, return_logvar=True
    )
    (out.square().sum() + w.square().sum() + logvar.sum()).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    if conditioning == "invfussion":
        names = {n.rsplit(".", 2)[-2] for n, _ in net.named_parameters()}
        assert {"mix", "joint_k", "joint_v"} <= names


def test_class_labels_and_the_null_class():
    net = perturbed(small(num_classes=10))
    _, xn, sigma, op, y = problem(net)
    null = net(xn, sigma, op, y)
    torch.testing.assert_close(
        net(xn, sigma, op, y, class_labels=torch.full((4,), 10)), null, rtol=0, atol=0
    )
    labelled = net(xn, sigma, op, y, class_labels=torch.tensor([1, 2, 3, 4]))
    assert (labelled - null).abs().amax(dim=(1, 2, 3)).min() > 1e-4
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        net(xn, sigma, op, y, class_labels=torch.tensor([0, 1, 2, 11]))
    with pytest.raises(ValueError, match="no classes"):
        small()(xn, sigma, op, y, class_labels=torch.tensor([0, 1, 2, 3]))


def test_divisibility_fallback_logs_one_warning(caplog):
    # level 1 has tokens of 8×8 pixels: width 96 is not a whole number of 64-pixel images
    with caplog.at_level(logging.WARNING, logger="invfussion.models.presets"):
        net = models.build("mnist32", "invfussion", widths=[32, 96], d_head=32, mapping_width=32)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "level 1" in warnings[0].getMessage()
    blocks = {type(layer.attention) for layer in net.backbone.mid_level.layers}
    assert blocks == {SelfAttentionBlock}
    assert all(
        isinstance(layer.attention, JointAttentionBlock)
        for layer in net.backbone.down_levels[0].layers
    )
    _, xn, sigma, op, y = problem(net)
    assert net(xn, sigma, op, y).shape == xn.shape


def test_bf16_autocast_agrees_with_float32():
    net = perturbed(small(), scale=0.02)
    _, xn, sigma, op, y = problem(net)
    ref = net(xn, sigma, op, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(xn, sigma, op, y)
    assert low.dtype == torch.float32
    network_part = ref - (0.25 / (sigma**2 + 0.25))[:, None, None, None] * xn  # c_out · F
    rel = (low - ref).norm() / network_part.norm()
    assert network_part.norm() > 0.1 * ref.norm() and rel < 3e-2


def test_bad_arguments_name_the_allowed_values():
    with pytest.raises(ValueError, match="mnist32, ffhq64, imagenet64, ffhq256"):
        models.build("cifar10")
    with pytest.raises(ValueError, match="invfussion, palette, unconditional"):
        models.build("mnist32", "cross-attention")
    with pytest.raises(ValueError, match="allowed: .*widths"):
        models.build("mnist32", width=3)
    with pytest.raises(ValueError, match="divisible"):
        models.build("mnist32", patch_size=3)
    net = small()
    with pytest.raises(ValueError, match=r"\(B, 1, 32, 32\)"):
        net(torch.zeros(2, 3, 32, 32), 1.0)
    with pytest.raises(ValueError, match=r"aug_labels must have shape \(B, 7\)"):
        net(torch.zeros(2, 1, 32, 32), 1.0, aug_labels=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="op and y together"):
        net(torch.zeros(2, 1, 32, 32), 1.0, op=deg.from_spec("none", (1, 32, 32), batch=2, seed=0))


def test_mnist32_preset_size():
    counts = {
        c: sum(p.numel() for p in models.build("mnist32", c).parameters())
        for c in models.CONDITIONINGS
    }
    assert counts["invfussion"] <= 4.5e6 and counts["palette"] < counts["invfussion"]


def test_shifted_window_levels_alternate_their_shift():
    net = models.build(
        "mnist32",
        "invfussion",
        widths=[32, 64],
        depths=[2, 1],
        d_head=16,
        mapping_width=32,
        attention=["shifted-window", "global"],
        window_size=4,
    )
    shifts = [layer.attention.pattern.shift for layer in net.backbone.down_levels[0].layers]
    assert shifts == [0, 2]
    _, xn, sigma, op, y = problem(perturbed(net))
    assert torch.isfinite(net(xn, sigma, op, y)).all()
