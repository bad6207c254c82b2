"""Linear degradation operators: families, specs and training mixtures.

    from invfussion import degradations as deg
    op = deg.from_spec("motion-blur:stride=4", image_shape=(3, 64, 64), batch=8, seed=0)
    y = op.measure(x, seed=0)           # x: (8, 3, 64, 64) -> y: (8, M), M = 3·16·16
    x_pinv = op.pinv(y)                 # (8, 3, 64, 64)
    mixed = deg.PAPER_MIXTURE.sample(64, (3, 64, 64), seed=0)   # a family per example

Families (see each class for its parameters and training distribution): ``inpaint-patches``,
``outpaint-box``, ``inpaint-box``, ``motion-blur``, ``motion-blur-folded-spectrum``, ``matrix``,
``sr``, ``none``, and the literature's (DPS, DAPS, DDNM): ``gaussian-blur``, ``uniform-blur``,
``motion-kernel-blur``, ``kernel-blur`` (``boundary=same|circular``), ``sr-bicubic``,
``inpaint-random``.
"""

from .base import Operator
from .blur import (
    GaussianBlur,
    KernelBlur,
    MotionKernelBlur,
    UniformBlur,
    PaddedConvolution,
    load_kernel,
)
from .folded_spectrum import FoldedSpectrumConvolution, FoldedSpectrumMotionBlur
from .grouped import GroupedOperator, in_part_order
from .masks import InpaintBox, InpaintPatches, InpaintRandom, MaskOperator, OutpaintBox
from .matrix import MatrixOperator, RandomMatrix
from .motion_blur import MotionBlur, StridedConvolution, camera_shake_kernel
from .registry import FAMILIES, from_spec, register
from .spec import Param, parse_spec
from .separable import SeparableOperator
from .super_resolution import AveragePool, BicubicSuperResolution, SuperResolution
from .zero import Zero, ZeroOperator

for _name, _cls in (
    ("inpaint-patches", InpaintPatches),
    ("outpaint-box", OutpaintBox),
    ("inpaint-box", InpaintBox),
    ("motion-blur", MotionBlur),
    ("motion-blur-folded-spectrum", FoldedSpectrumMotionBlur),
    ("matrix", RandomMatrix),
    ("sr", SuperResolution),
    ("none", Zero),
    ("gaussian-blur", GaussianBlur),
    ("uniform-blur", UniformBlur),
    ("motion-kernel-blur", MotionKernelBlur),
    ("kernel-blur", KernelBlur),
    ("sr-bicubic", BicubicSuperResolution),
    ("inpaint-random", InpaintRandom),
):
    register(_name, _cls)

from .mixture import PAPER_MIXTURE, Mixture, NoiseLevels, paper_mixture

__all__ = [
    "FAMILIES",
    "PAPER_MIXTURE",
    "AveragePool",
    "BicubicSuperResolution",
    "FoldedSpectrumConvolution",
    "FoldedSpectrumMotionBlur",
    "GaussianBlur",
    "GroupedOperator",
    "InpaintBox",
    "InpaintPatches",
    "InpaintRandom",
    "KernelBlur",
    "MaskOperator",
    "MatrixOperator",
    "Mixture",
    "MotionBlur",
    "MotionKernelBlur",
    "NoiseLevels",
    "Operator",
    "OutpaintBox",
    "Param",
    "RandomMatrix",
    "SeparableOperator",
    "StridedConvolution",
    "SuperResolution",
    "UniformBlur",
    "Zero",
    "ZeroOperator",
    "PaddedConvolution",
    "camera_shake_kernel",
    "from_spec",
    "in_part_order",
    "load_kernel",
    "paper_mixture",
    "parse_spec",
    "register",
]
