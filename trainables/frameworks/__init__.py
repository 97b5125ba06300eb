"""Self-supervised frameworks: SimCLR (in-batch negatives) and MoCo (momentum encoder + queue)."""

from trainables.frameworks.moco import MoCo
from trainables.frameworks.projector import Projector
from trainables.frameworks.simclr import SimCLR

__all__ = ["MoCo", "Projector", "SimCLR"]
