"""Training any config-built model (:mod:`..models.siamese`) with the one training loop.

The loop, precision, DDP, resume and logging are :class:`.trainer.Trainer`'s; what
differs between models is data here: the input convention (``model.normalise``), the
loss (a :data:`LOSSES` entry the ``train.loss`` key names), and, for SiamRPN++-style
schedules, a backbone frozen (BN in eval mode too) until ``unfreeze_epoch``, whose
named stages then train at ``backbone_lr_scale`` times the lr.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..config import Config, param, to_dict
from ..data.box_pairs import BoxPairDataset
from ..models.anchors import make_anchors
from ..models.backbone import INITS
from ..models.siamese import ModelConfig, SiamModel, build_model
from ..registry import Registry
from .distributed import DistEnv, setup
from .losses import balanced_loss, logistic_labels, rpn_loss, soft_margin_loss
from .rpn_targets import anchor_targets
from .trainer import TrainConfig, Trainer, fit_and_save


@dataclass
class FreezeConfig(Config):
    """Which backbone stages train, and from when (SiamRPN++: layer2-4 from epoch 10 at 0.1x)."""

    unfreeze_epoch: int = param(0, ge=0)          # the backbone is frozen before this epoch (0: never frozen)
    stages: list[str] = param(factory=list)       # backbone children that unfreeze then (empty: all)
    backbone_lr_scale: float = param(1.0, gt=0)


@dataclass
class RPNSampling(Config):
    """Anchors an RPN pair is scored on: pysot samples 16 positives and 48 negatives. ``negatives: 0`` keeps every
    anchor at IoU <= 0.3 (each class still weighs half), the dense supervision SiamFC's loss gives every position."""

    positives: int = param(16, ge=1)
    negatives: int = param(48, ge=0)


class Loss:
    """A loss entry: built with the model's config, called on its outputs (and boxes if it needs them)."""

    needs_boxes = False

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
        self.model_cfg, self.train_cfg = model_cfg, train_cfg

    def __call__(self, out: dict[str, torch.Tensor], boxes: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError


LOSSES: Registry[Callable[..., Loss]] = Registry("loss")


class _ScoreMapLoss(Loss):
    def scaled(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return out["score"] * self.train_cfg.score_scale

    def labels(self, score: torch.Tensor) -> torch.Tensor:
        return logistic_labels(score.shape[-1], self.train_cfg.r_pos, self.train_cfg.r_neg,
                               self.model_cfg.stride).to(score.device)


@LOSSES.register("balanced_logistic")
class BalancedLogistic(_ScoreMapLoss):
    """SiamFC's balanced logistic loss on the score map (Bertinetto et al., 2016)."""

    def __call__(self, out, boxes):
        return balanced_loss(self.scaled(out), self.labels(out["score"]))


@LOSSES.register("soft_margin")
class SoftMargin(_ScoreMapLoss):
    """SiameseX's soft-margin loss: labels +1 near the centre, -1 elsewhere."""

    def __call__(self, out, boxes):
        return soft_margin_loss(self.scaled(out), self.labels(out["score"]))


@LOSSES.register("rpn")
class RPNLoss(Loss):
    """Anchor targets by IoU with sampling (pysot), cross-entropy and smooth-L1."""

    needs_boxes = True

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
        super().__init__(model_cfg, train_cfg)
        self._anchors: dict[int, Any] = {}

    def __call__(self, out, boxes):
        side = out["cls"].shape[-1]
        if side not in self._anchors:
            self._anchors[side] = make_anchors(self.model_cfg.anchor_ratios, self.model_cfg.anchor_scales,
                                               self.model_cfg.stride, side, self.model_cfg.instance_sz)
        anchors, sampling = self._anchors[side], self.train_cfg.rpn
        total = sampling.positives + (sampling.negatives or anchors[..., 0].size)
        targets = [anchor_targets(anchors, b.detach().cpu().numpy(), total=total, max_pos=sampling.positives)
                   for b in boxes]
        return rpn_loss(out["cls"], out["loc"], targets)


@dataclass
class ModelTrainConfig(TrainConfig):
    loss: str = param("balanced_logistic", choices=("balanced_logistic", "soft_margin", "rpn"))
    # The score-map losses see the score times this. An unscaled correlation of 512 channels (SiameseX's
    # FC-22 heads) gives logits in the thousands; SiamFC's head scales by 0.001 for that reason. The SiamFC
    # tracker is unchanged by a positive scale of the map, so this trains the same tracker, well conditioned.
    score_scale: float = param(1.0, gt=0)
    freeze: FreezeConfig = param(factory=FreezeConfig)
    rpn: RPNSampling = param(factory=RPNSampling)    # the rpn loss's anchor sample
    init: str = param("xavier", choices=tuple(INITS))   # the backbone's init from scratch (models.backbone.INITS)
    pretrained: str = ""      # a local state-dict file for the backbone (torchvision's names); nothing downloads


class ModelTrainer(Trainer):
    """:class:`Trainer` for a :class:`SiamModel` and a registered loss."""

    def __init__(self, model: SiamModel, cfg: ModelTrainConfig, crops_dir: str, out_dir: str,
                 env: DistEnv | None = None, meta: dict[str, Any] | None = None) -> None:
        self.criterion = LOSSES.get(cfg.loss)(model.cfg, cfg)
        stages = [getattr(model.backbone, s) for s in cfg.freeze.stages] or [model.backbone]
        self.unfrozen = [p for s in stages for p in s.parameters()]
        super().__init__(model, cfg, crops_dir, out_dir, env, meta)
        if cfg.pairs.instance_sz != model.cfg.instance_sz or cfg.pairs.exemplar_sz != model.cfg.exemplar_sz:
            raise ValueError("train.pairs crop sizes must be the model's")
        if self.criterion.needs_boxes:
            self.dataset = BoxPairDataset(crops_dir, cfg.pairs, cfg.seed)

    def make_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """Head and neck at the lr; the stages that unfreeze at ``backbone_lr_scale`` of it."""
        late = {id(p) for p in self.unfrozen}
        groups = [{"params": [p for p in self.net.parameters() if id(p) not in late]},
                  {"params": self.unfrozen, "lr": self.cfg.initial_lr * self.cfg.freeze.backbone_lr_scale}]
        return super().make_optimizer([g for g in groups if g["params"]])

    def train_epoch(self, epoch: int) -> None:
        if self.cfg.freeze.unfreeze_epoch:   # before it nothing in the backbone trains; after it, the stages
            live = {id(p) for p in self.unfrozen} if epoch >= self.cfg.freeze.unfreeze_epoch else set()
            for p in self.net.backbone.parameters():
                p.requires_grad_(id(p) in live)
        super().train_epoch(epoch)

    def set_mode(self) -> None:
        super().set_mode()
        # Frozen BN keeps its statistics: SiameseX's model.train() re-enabled them every epoch.
        for m in self.net.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None and not m.weight.requires_grad:
                m.eval()

    def loss(self, z: torch.Tensor, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        out = self.model(self.net.normalise(z), self.net.normalise(x))
        return self.criterion(out, extra[0] if extra else None)

    def payload(self, **meta: Any) -> dict[str, Any]:
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        return {"state_dict": state, "meta": {"model": to_dict(self.net.cfg), **meta}}


def train_model(model_cfg: ModelConfig, cfg: ModelTrainConfig, crops_dir: str, out_dir: str,
                track: dict[str, Any] | None = None, resume: bool = False, device: str | None = None) -> str:
    """Train a config-built model from scratch (or its backbone from ``cfg.pretrained``); write ``out_dir/model.pth``."""
    env = setup(device)
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg)
    INITS.get(cfg.init)(model.backbone)   # necks and heads keep their parts' own init
    if cfg.pretrained:
        from ..models.model_io import load_backbone_weights
        kept = load_backbone_weights(model, cfg.pretrained)
        if kept and env.is_main:
            print(f"pretrained {cfg.pretrained}: {len(kept)} tensors of another shape keep their init ({kept[0]}, ...)")
    return fit_and_save(ModelTrainer(model, cfg, crops_dir, out_dir, env, meta={"track": track or {}}), resume)
