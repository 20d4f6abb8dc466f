"""The anchor-based tracker of SiamRPN (Li et al., CVPR 2018), DaSiamRPN and SiamRPN++
as a got10k ``Tracker``."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from got10k.trackers import Tracker

from ..config import Config, ConfigError, param
from ..errors import InputError
from ..geometry import context_size, crop_region, fill_color, from_center, is_valid_box, square, to_center
from ..models.anchors import decode, make_anchors, split_cls, split_loc
from .siamfc import run_tracker

if TYPE_CHECKING:
    from ..models.siamese import SiamModel


@dataclasses.dataclass
class RPNTrackerConfig(Config):
    """SiamRPN's tracking hyper-parameters; the defaults are DaSiamRPN's (SiameseX's too).

    ``penalty_k`` sets how much a change of the box's size or aspect ratio costs,
    ``window_influence`` the cosine window's share of the final score and ``lr`` how
    fast the size follows the regressed box (times the winner's penalised score).
    Published settings:

    ===================================================  =========  ================  =====  ===========
    source                                               penalty_k  window_influence  lr     instance_sz
    ===================================================  =========  ================  =====  ===========
    DaSiamRPN, SiameseX (the defaults here)              0.055      0.42              0.295  255
    pysot's built-in defaults (``core/config.py``)       0.04       0.44              0.4    255
    pysot ``siamrpn_r50_l234_dwxcorr`` (SiamRPN++, VOT)  0.05       0.42              0.38   255
    pysot ``siamrpn_r50_l234_dwxcorr_otb`` (OTB)         0.24       0.5               0.25   255
    pysot ``siamrpn_alex_dwxcorr``                       0.16       0.40              0.30   287
    ===================================================  =========  ================  =====  ===========

    ``exemplar_sz`` and ``instance_sz`` default to the model's (None); a larger search
    crop only grows the score map, whose side the tracker reads off the output.
    """

    exemplar_sz: int | None = param(None, ge=15)
    instance_sz: int | None = param(None, ge=15)
    context: float = param(0.5, ge=0)
    penalty_k: float = param(0.055, ge=0)
    window_influence: float = param(0.42, ge=0, le=1)
    lr: float = param(0.295, ge=0, le=1)

    def check(self) -> None:
        if self.exemplar_sz and self.instance_sz and self.instance_sz < self.exemplar_sz:
            raise ConfigError("RPNTrackerConfig.instance_sz", f"{self.instance_sz} is smaller than exemplar_sz "
                                                              f"{self.exemplar_sz}")


_MAX_LOG_SCALE = float(np.log(1000 / 16))   # torchvision's bound on log size deltas


def _change(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 1 / r)


class RPNTracker(Tracker):
    """Siamese region-proposal tracker over any :class:`SiamModel` with an anchor head.

    At ``init`` the exemplar (context ``cfg.context`` around the box) is embedded
    and the head prepares its kernel. Each frame: cut the search square
    ``instance_sz / exemplar_sz`` times the exemplar's side around the last
    centre, score every anchor (softmax over background and target), decode its
    box, damp boxes that change the size or aspect ratio (``penalty_k``), mix in a
    cosine window, take the best anchor, move to its centre and let the size
    follow its box at rate ``lr`` times its penalised score. Crops are RGB with the
    frame's mean colour outside it; ``model.normalise`` puts them in the model's
    input convention. Positions map back through the whole-pixel square the crop
    was cut from (``geometry.square``), so its rounding costs no accuracy (pysot
    and DaSiamRPN take the crop as centred on the unrounded centre: up to half a
    pixel off).
    """

    def __init__(self, model: "SiamModel", cfg: RPNTrackerConfig | None = None, name: str = "SiamRPN") -> None:
        super().__init__(name, is_deterministic=True)
        self.model = model.eval()
        self.cfg = cfg = cfg or RPNTrackerConfig()
        self.exemplar_sz = cfg.exemplar_sz or model.cfg.exemplar_sz
        self.instance_sz = cfg.instance_sz or model.cfg.instance_sz
        if self.instance_sz < self.exemplar_sz:
            raise ConfigError("RPNTrackerConfig.instance_sz", f"{self.instance_sz} is smaller than the exemplar "
                                                              f"({self.exemplar_sz})")
        self.anchor_num = len(model.cfg.anchor_ratios) * len(model.cfg.anchor_scales)
        self.device = next(model.parameters(), torch.empty(0)).device
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self.last_score = 0.0

    def _crop(self, img: np.ndarray, size: float, out_size: int) -> torch.Tensor:
        crop = crop_region(img, self.center, size, out_size, self.fill)
        batch = torch.from_numpy(crop).to(self.device).permute(2, 0, 1)[None].float()
        return self.model.normalise(batch)

    def _anchors(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """Anchors and cosine window (both indexed ``[a, i, j]``) of a ``side`` x ``side`` map."""
        if self._grid is None or self._grid[0].shape[1] != side:
            mc = self.model.cfg
            anchors = make_anchors(mc.anchor_ratios, mc.anchor_scales, mc.stride, side, self.instance_sz)
            hann = np.hanning(side)
            self._grid = anchors, np.broadcast_to(np.outer(hann, hann), anchors.shape[:3])
        return self._grid

    def init(self, image: Any, box: np.ndarray) -> None:
        img = np.asarray(image)
        if not is_valid_box(box):
            raise InputError(f"initial box {np.asarray(box).tolist()} is not a finite box with positive size")
        self.center, self.target_sz = to_center(box)
        self.fill = fill_color(img)
        z = self._crop(img, context_size(self.target_sz, self.cfg.context), self.exemplar_sz)
        with torch.no_grad():
            self.kernel = self.model.head.prepare(self.model.embed(z))

    def update(self, image: Any) -> np.ndarray:
        img = np.asarray(image)
        cfg = self.cfg
        x_sz = context_size(self.target_sz, cfg.context) * self.instance_sz / self.exemplar_sz
        with torch.no_grad():
            out = self.model.head.respond(self.kernel, self.model.embed(self._crop(img, x_sz, self.instance_sz)))
            cls, loc = out["cls"], out["loc"]
            if cls.shape[1] != 2 * self.anchor_num or loc.shape[1] != 4 * self.anchor_num:
                raise ValueError(f"the head gives {cls.shape[1]} cls and {loc.shape[1]} loc channels; "
                                 f"{self.anchor_num} anchors need {2 * self.anchor_num} and {4 * self.anchor_num}")
            score = F.softmax(split_cls(cls, self.anchor_num)[0].float(), dim=-1)[..., 1].cpu().numpy()
            deltas = split_loc(loc, self.anchor_num)[0].float().cpu().numpy()
        anchors, window = self._anchors(score.shape[-1])
        # A wild size delta (an untrained head) would overflow exp; no trained one nears the bound.
        sizes = np.clip(deltas[..., 2:], -_MAX_LOG_SCALE, _MAX_LOG_SCALE)
        boxes = decode(np.concatenate([deltas[..., :2], sizes], -1), anchors)

        # The crop is the square geometry.square cuts, resized: crop pixel u sits at
        # frame pixel y0 - 0.5 + (u + 0.5) / scale.
        y0, x0, y1, _ = square(self.center, x_sz)
        scale = self.instance_sz / (y1 - y0)
        h, w = self.target_sz * scale
        # the size penalty compares context-0.5 squares whatever the crops' context (DaSiamRPN, pysot)
        s_c = _change(context_size(boxes[..., 2:4], 0.5) / context_size((w, h), 0.5))
        r_c = _change((w / h) / (boxes[..., 2] / boxes[..., 3]))
        penalty = np.exp(-(r_c * s_c - 1) * cfg.penalty_k)
        pscore = penalty * score * (1 - cfg.window_influence) + window * cfg.window_influence
        best = np.unravel_index(int(np.argmax(pscore)), pscore.shape)

        bx, by, bw, bh = boxes[best]
        rate = penalty[best] * score[best] * cfg.lr
        frame_h, frame_w = img.shape[:2]
        center = np.array([y0, x0]) - 0.5 + (np.array([by, bx]) + 0.5) / scale
        size = self.target_sz * (1 - rate) + np.array([bh, bw]) / scale * rate
        self.center = np.clip(center, 0, [frame_h - 1, frame_w - 1])
        self.target_sz = np.clip(size, 10, [frame_h, frame_w])
        self.last_score = float(score[best])
        return from_center(self.center, self.target_sz)

    def track(self, img_files: list[str], box: np.ndarray,
              visualize: bool = False) -> tuple[np.ndarray, np.ndarray]:
        return run_tracker(self, img_files, box, visualize)
