"""The Feature Degradation Layer against a naive per-example, per-image loop (NOTES §3)."""

import pytest
import torch
import torch.nn.functional as F

from invfussion import degradations as deg
from invfussion.models.invfussion import FeatureDegradationLayer, stack_to_tokens, tokens_to_stack

MIXTURE = deg.Mixture(["matrix:rows=16", "motion-blur:stride=2", "inpaint-patches", "none"])


def naive_unpatch(z: torch.Tensor, patch: int, channels: int) -> torch.Tensor:
    """One example's tokens ``(h, w, d)`` → ``(K, C, H, W)`` by the authors' channel order:
    feature index = ((row·P + col)·K + k)·C + c (sub-pixel position outermost)."""
    h, w, d = z.shape
    k_images = d // (patch * patch * channels)
    out = torch.empty(k_images, channels, h * patch, w * patch, dtype=z.dtype)
    for i in range(h):
        for j in range(w):
            for r in range(patch):
                for s in range(patch):
                    for k in range(k_images):
                        for c in range(channels):
                            out[k, c, i * patch + r, j * patch + s] = z[
                                i, j, ((r * patch + s) * k_images + k) * channels + c
                            ]
    return out


@pytest.mark.parametrize("patch,channels,width", [(2, 1, 12), (2, 3, 24)])
def test_token_layout_is_the_authors_order(patch, channels, width):
    z = torch.randn(2, 3, 4, width)
    stack = tokens_to_stack(z, patch, channels)
    for b in range(2):
        torch.testing.assert_close(stack[b], naive_unpatch(z[b], patch, channels), rtol=0, atol=0)
    torch.testing.assert_close(stack_to_tokens(stack, patch), z, rtol=0, atol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_fdl_equals_naive_loop_on_a_mixed_batch(channels):
    torch.manual_seed(0)
    batch, res, patch, width = 6, 8, 2, 4 * channels * 3  # K = 3 images per token grid
    shape = (channels, res, res)
    fdl = FeatureDegradationLayer(width, patch, channels).double()
    assert len(set(MIXTURE.choose(3, range(batch)))) == 4  # every family in one batch
    op = MIXTURE.sample(batch, shape, seed=3)
    x = torch.randn(batch, *shape, dtype=torch.float64)
    y = op.A(x)
    z = torch.randn(batch, res // patch, res // patch, width, dtype=torch.float64)
    out = fdl(z, op, y)

    W = fdl.mix.weight  # (K, K+1)
    for b in range(batch):
        op_b = MIXTURE.sample(None, shape, seed=3, indices=[b])  # example b alone: its own M
        images = naive_unpatch(z[b], patch, channels)
        measured = [op_b.A(x[b : b + 1])[0]] + [op_b.A(img[None])[0] for img in images]
        restored = []
        for k in range(fdl.n_images):
            mixed = sum(W[k, l] * measured[l] for l in range(fdl.n_images + 1))
            restored.append(op_b.pinv(F.gelu(mixed)[None])[0])
        expected = torch.stack(restored)  # (K, C, H, W)
        got = naive_unpatch(out[b], patch, channels)
        torch.testing.assert_close(got, expected, atol=1e-9, rtol=1e-7)


def test_fdl_rejects_a_width_that_is_not_whole_images():
    with pytest.raises(ValueError, match="not divisible"):
        FeatureDegradationLayer(width=40, patch=4, channels=1)
