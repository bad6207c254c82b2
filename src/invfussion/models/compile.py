"""``torch.compile`` for a denoiser, leaving the operator out of every compiled graph.

Each training batch brings new operators (other families, strides, sizes per family), and
compiling a graph that reads them would recompile at every step. So only the parts that see
tensors alone are compiled, each with static shapes: every attention block's
:meth:`~invfussion.models.hdit.SelfAttentionBlock.attention` (the FDL runs eagerly before it), the
feed-forward blocks, token merges and splits, and the mapping network. Outputs equal the eager
network's to float rounding.
"""

from __future__ import annotations

import torch

from .hdit import FeedForwardBlock, MappingNetwork, SelfAttentionBlock, TokenMerge, TokenSplit
from .precond import Denoiser


def compile_denoiser(net: Denoiser) -> Denoiser:
    """Compile ``net``'s operator-free parts in place (the first call of each shape compiles) and
    return it. Parameter names and the state dict are unchanged."""
    for module in net.modules():
        if isinstance(module, SelfAttentionBlock):
            module.attention = torch.compile(module.attention, dynamic=False)
        elif isinstance(module, (FeedForwardBlock, MappingNetwork, TokenMerge, TokenSplit)):
            module.compile(dynamic=False)
    return net
