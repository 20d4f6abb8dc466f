"""The compression config: FD's recipe (how each step starts, what its fits aim at, how fine-tunes train)
and its budget, with the selection set each phase is scored on. The defaults are the recipe measured best."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, param
from ..data.frames import FramePairConfig
from ..evaluation.benchmarks import BENCHMARK_NAMES
from ..models.fd import SQUEEZE_GROUPINGS
from ..tracking.backends import BACKENDS
from ..training.distill import LossWeights
from ..training.trainer import TrainConfig
from .diagnosis import DiagnoseConfig
from .squeezes import SQUEEZES
from .transitions import TARGETS, TRANSITIONS


# Distillation from the teacher: Adam at a small lr, BN statistics kept (SiamFC_VID's are folded into identities).
DISTILL = dict(batch_size=16, num_workers=0, optimizer="adam", weight_decay=0.0, initial_lr=5e-5, ultimate_lr=2e-5,
               bn="frozen")


@dataclass
class SelectConfig(Config):
    """Where and how candidate checkpoints are scored."""

    benchmark: str = param("got10k-val", choices=BENCHMARK_NAMES)
    root: str = param("", path="dir")
    workers: int = param(2, ge=1)
    backend: str = param("fp32", choices=BACKENDS)
    sequences: int = param(0, ge=0)                 # use only the first N sequences (0 = all)
    names: list[str] = param(factory=list)          # or only these sequences
    segment: int = param(0, ge=0)                   # track in pieces of this many frames (0: whole sequences)
    tail_names: list[str] = param(factory=list)     # sequences whose last `tail` (kept out of training) is tracked too
    tail: float = param(0.0, ge=0, le=0.9)
    extra: list[str] = param(factory=list)          # BENCHMARK:ROOT[:SPLIT] sets tracked too, pooled with the
                                                    # selection sequences sequence by sequence
    score_single: bool = True    # track a phase's only candidate too: a per-step tracking curve where nothing
                                 # is chosen (off: the diagnosis alone measures each step, at a fraction of the cost)


@dataclass
class CompressConfig(Config):
    """One compression. The defaults are the recipe measured best on held-out real footage
    (docs/training-and-compression.md, "Ablations"): closed-form steps aimed at the teacher's activations,
    channel-selection squeezes grouped as the next conv, and fine-tunes alone training, by distillation
    on random regions of the training frames. Configs set the data, the budget and the selection set;
    the paper's own recipe is ``transition: fresh, grouping: conv, targets: previous, squeeze: pca,
    data: pairs, loss: {track: 1}`` with trained steps."""

    rates: list[float] = param(factory=lambda: [0.3], gt=0, le=1)   # relative to the teacher: one, or one a layer
    grouping: str = param("aligned", choices=SQUEEZE_GROUPINGS)  # squeeze/combine groups: conv (paper) | aligned
    transition: str = param("inherit", choices=TRANSITIONS)      # even-step initialisation: fresh (paper) | inherit
    targets: str = param("teacher", choices=TARGETS)             # what the inherit fits reproduce
    squeeze: str = param("select", choices=SQUEEZES)             # inherit's odd steps: PCA hourglass | channel selection
    loss: LossWeights = param(factory=lambda: LossWeights(track=0.0, response=1.0, features=1.0))
    data: str = param("frames", choices=("pairs", "frames"))     # training pairs: target-centred crops | random
                                                                 # regions of the frames, teacher outputs cached
    frames: FramePairConfig = param(factory=FramePairConfig)
    candidates: int = param(1, ge=1)                # newest epochs of a phase that compete for selection
    init_candidate: bool = True                     # the phase's starting network (epoch 0) competes too
    sample_images: int = param(128, ge=1)           # pairs (exemplar and search crop) the inherit fits read
    refine_iters: int = param(0, ge=0)              # inherit: local refinement of each even step (0: off)
    refine_lr: float = param(1e-4, gt=0)
    step: TrainConfig = param(factory=lambda: TrainConfig(epochs=0, **DISTILL))   # the fit alone
    finetune: TrainConfig = param(factory=lambda: TrainConfig(epochs=2, guard=3.0, **DISTILL))
    select: SelectConfig = param(factory=SelectConfig)
    diagnose: DiagnoseConfig = param(factory=DiagnoseConfig)
    seed: int = param(0, ge=0)
    last_step: int = param(0, ge=0)                 # stop after this step (0: all; the transform needs all)

    def check(self) -> None:
        from ..config import ConfigError
        if self.data == "frames" and self.loss.track:
            raise ConfigError("CompressConfig.data", "random-region pairs have no labels: set loss.track to 0")
