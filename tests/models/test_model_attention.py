"""Attention patterns and backends against explicit per-query references."""

import math

import pytest
import torch

from invfussion.models.attention import (
    AttentionPattern,
    AxialRoPE,
    apply_rope,
    attend,
    compare_attention_backends,
    grid_positions,
    pattern_mask,
)


def neighborhood_keys(qy: int, qx: int, h: int, w: int, k: int) -> set[tuple[int, int]]:
    """NATTEN's neighborhood written out: the k×k box centred on the query, slid inside the grid."""

    def window(q, n):
        size = min(k, n)
        lo = q - size // 2
        lo = max(0, min(lo, n - size))
        return range(lo, lo + size)

    return {(y, x) for y in window(qy, h) for x in window(qx, w)}


@pytest.mark.parametrize("h,w,k", [(9, 9, 7), (10, 6, 3), (5, 5, 7), (8, 8, 4)])
def test_neighborhood_mask_matches_explicit_windows(h, w, k):
    mask = pattern_mask(AttentionPattern("neighborhood", kernel_size=k), h, w)
    for qy in range(h):
        for qx in range(w):
            allowed = {divmod(int(j), w) for j in torch.nonzero(mask[qy * w + qx]).flatten()}
            keys = neighborhood_keys(qy, qx, h, w, k)
            assert allowed == keys
            assert (qy, qx) in keys and len(keys) == min(k, h) * min(k, w)


def swin_groups_1d(n: int, window: int, shift: int) -> list[tuple[int, int]]:
    """Swin's recipe on one axis: cyclic shift by -shift, partition, and separate wrapped tokens."""
    labels = []
    for i in range(n):
        rolled = (i - shift) % n
        wrapped = i < shift
        labels.append((rolled // window, wrapped))
    return labels


@pytest.mark.parametrize("shift", [0, 2])
def test_shifted_window_mask_matches_swin(shift):
    h = w = 8
    window = 4
    mask = pattern_mask(AttentionPattern("shifted-window", window_size=window, shift=shift), h, w)
    lab = swin_groups_1d(h, window, shift)
    for i in range(h * w):
        for j in range(h * w):
            (iy, ix), (jy, jx) = divmod(i, w), divmod(j, w)
            assert bool(mask[i, j]) == (lab[iy] == lab[jy] and lab[ix] == lab[jx])


@pytest.mark.parametrize("kind", ["neighborhood", "shifted-window"])
@pytest.mark.parametrize("groups", [1, 2])
def test_masked_attention_equals_per_query_softmax(kind, groups):
    torch.manual_seed(0)
    h, w, dh = 6, 5, 8
    n = h * w
    pattern = AttentionPattern(kind, kernel_size=3, window_size=4, shift=2)
    q = torch.randn(2, 3, n, dh)
    k = torch.randn(2, 3, groups * n, dh)
    v = torch.randn(2, 3, groups * n, dh)
    out = attend(q, k, v, pattern, (h, w), backend="dense")
    mask = pattern_mask(pattern, h, w)
    ref = torch.empty_like(out)
    for i in range(n):
        keys = [g * n + int(j) for g in range(groups) for j in torch.nonzero(mask[i]).flatten()]
        logits = torch.einsum("bhd,bhld->bhl", q[:, :, i], k[:, :, keys])
        ref[:, :, i] = torch.einsum("bhl,bhld->bhd", logits.softmax(-1), v[:, :, keys])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_global_attention_is_full_softmax():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 12, 8), torch.randn(1, 2, 24, 8), torch.randn(1, 2, 24, 8)
    out = attend(q, k, v, AttentionPattern("global"), (3, 4))
    ref = (q @ k.transpose(-1, -2)).softmax(-1) @ v
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_rope_rotates_first_half_only_and_is_relative():
    torch.manual_seed(0)
    d_head = 32
    rope = AxialRoPE(d_head)
    pos = grid_positions(4, 4)
    cos, sin = rope(pos)
    q, k = torch.randn(1, 1, 16, d_head), torch.randn(1, 1, 16, d_head)
    rq = apply_rope(q, cos, sin)
    torch.testing.assert_close(rq[..., d_head // 2 :], q[..., d_head // 2 :])
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    # the same vector at every position: logits depend only on the position difference
    same_q, same_k = q[:, :, :1].expand_as(q), k[:, :, :1].expand_as(k)
    logits = apply_rope(same_q, cos, sin) @ apply_rope(same_k, cos, sin).transpose(-1, -2)
    grid = torch.arange(16).reshape(4, 4)
    torch.testing.assert_close(
        logits[0, 0, grid[0, 0], grid[1, 1]], logits[0, 0, grid[2, 2], grid[3, 3]]
    )
    assert not math.isclose(float(logits[0, 0, 0, 5]), float(logits[0, 0, 0, 1]), rel_tol=1e-3)


def test_unknown_attention_kind_is_a_value_error():
    with pytest.raises(ValueError, match="global, neighborhood, shifted-window"):
        AttentionPattern("axial")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention backend runs on CUDA")
def test_flex_backend_matches_dense_masked_attention_on_cuda():
    for grid, groups in (((32, 32), 1), ((32, 32), 2), ((16, 16), 2)):
        diffs = compare_attention_backends("cuda", grid=grid, kernel_size=7, groups=groups)
        assert diffs["forward"] < 1e-4 and diffs["grad"] < 1e-4, diffs
