"""Training: objectives, the loop, EMA, checkpoints and distributed helpers.

    from invfussion.training import TrainConfig, train
    final_checkpoint = train(TrainConfig(preset="mnist32", conditioning="invfussion", steps=20_000, out="runs/a"))

``torchrun --nproc_per_node=N -m invfussion train ...`` runs the same loop data-parallel.
"""

from .checkpoint import latest_checkpoint, load_checkpoint, resolve_checkpoint, save_checkpoint
from .ema import EMA, ema_beta
from .grid import save_image_grid
from .loop import TrainConfig, learning_rate, train
from .losses import OBJECTIVES, DiffusionLoss, MMSELoss, TrainingBatch, make_objective

__all__ = [
    "EMA", "OBJECTIVES", "DiffusionLoss", "MMSELoss", "TrainConfig", "TrainingBatch", "ema_beta",
    "latest_checkpoint", "learning_rate", "load_checkpoint", "make_objective", "resolve_checkpoint",
    "save_checkpoint", "save_image_grid", "train",
]
