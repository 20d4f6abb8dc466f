"""A network's score maps on held-out cropped pairs: the training loss and how often the peak lands on the target.

Tracking a benchmark measures a whole tracker; this measures the network alone, in a few seconds, on pairs
drawn as training draws them (same crops, augmentations and labels) from sequences training never saw. It is
the validation curve of teacher training and the instrument for choosing its data, pairs and schedule without
touching the benchmark that reports the result.
"""
from __future__ import annotations

import torch

from ..data.pairs import spread_pairs
from ..models.backbone import TOTAL_STRIDE
from .losses import balanced_loss, logistic_labels


class HeldOutPairs:
    """``count`` fixed pairs spread evenly over a cropped dataset (``crop`` output), read once. They are
    SiamFC's standard 127 / 239 crops whatever a training run's ``search_sz``, so runs compare."""

    def __init__(self, crops_dir: str, count: int = 400, seed: int = 5) -> None:
        self.z, self.x = spread_pairs(crops_dir, count, seed, pairs_per_seq=5)

    def __len__(self) -> int:
        return len(self.z)

    @torch.inference_mode()
    def score(self, net: torch.nn.Module, r_pos: float = 16, batch: int = 20) -> dict[str, float]:
        """Mean balanced loss, and the share of pairs whose peak is within ``r_pos`` (L1, search pixels) of
        the target's centre, for ``net`` in eval mode (its mode is restored)."""
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        loss, hits = 0.0, 0
        for i in range(0, len(self), batch):
            z = self.z[i:i + batch].to(device).float()
            r = net(z, self.x[i:i + batch].to(device).float()).float()
            side = r.shape[-1]
            loss += balanced_loss(r, logistic_labels(side, r_pos, 0, TOTAL_STRIDE).to(device)).item() * len(z)
            peak = r.flatten(1).argmax(1)
            centre = (side - 1) / 2
            dist = (peak // side - centre).abs() + (peak % side - centre).abs()
            hits += int((dist <= r_pos / TOTAL_STRIDE).sum())
        net.train(was_training)
        return {"heldout_loss": loss / len(self), "heldout_peak": hits / len(self)}
