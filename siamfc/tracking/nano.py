"""NanoTrack's anchor-free point tracker (HonglinChu's NanoTrack, as OpenCV's ``TrackerNano`` runs it)
as a got10k ``Tracker``."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from got10k.trackers import Tracker

from ..config import Config, param
from ..errors import InputError
from ..geometry import crop_region, fill_color, is_valid_box
from .siamfc import run_tracker

if TYPE_CHECKING:
    from ..models.siamese import SiamModel


@dataclasses.dataclass
class NanoTrackerConfig(Config):
    """NanoTrack's tracking hyper-parameters; the defaults are SiamTrackers' v2 config (``configv2.yaml``).

    Published settings (``penalty_k`` prices a change of size or aspect ratio, ``window_influence`` is the
    cosine window's share of the score, ``lr`` how fast the size follows the winning box):

    ==============================================  =========  ================  =====
    source                                          penalty_k  window_influence  lr
    ==============================================  =========  ================  =====
    SiamTrackers NanoTrack v2 (the defaults here)   0.15       0.49              0.385
    OpenCV ``TrackerNano`` (built in, not settable)  0.055      0.455             0.37
    ==============================================  =========  ================  =====
    """

    context: float = param(0.5, ge=0)
    penalty_k: float = param(0.15, ge=0)
    window_influence: float = param(0.49, ge=0, le=1)
    lr: float = param(0.385, ge=0, le=1)
    whole_pixels: bool = False    # report the box as OpenCV's Rect does: corner and size truncated to integers


def _change(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 1 / r)


def context_side(w: float, h: float, context: float = 0.5) -> Any:
    """The exemplar square's side for a ``w`` x ``h`` target: ``sqrt((w + p)(h + p))``, p = context (w + h)."""
    pad = (w + h) * context
    return np.sqrt((w + pad) * (h + pad))


def nano_crop(img: np.ndarray, centre: np.ndarray, side: int, out_size: int) -> np.ndarray:
    """The square ``[int(c) - (side + 1) // 2, + side)`` on each axis of the ``(x, y)`` centre, as
    ``TrackerNano`` cuts it: padded with the frame's mean colour, resized to ``out_size``."""
    lo = np.array([int(centre[1]), int(centre[0])]) - (side + 1) // 2
    return crop_region(img, lo + (side - 1) / 2, side, out_size, fill_color(img))


class NanoTracker(Tracker):
    """One 255 px search crop a frame, scored at the 16x16 points of an anchor-free head.

    The geometry is OpenCV 5.1's ``TrackerNano`` (tracker_nano.cpp), kept to the pixel: with its
    hyper-parameters and the same ONNX pair, the two give the same boxes (OpenCV's, truncated to whole
    pixels, are ours truncated). The target is a centre ``(x, y)`` in pixel-edge coordinates (a box
    ``x0, y0, w, h`` has centre ``x0 + w / 2``) and a size. The exemplar square has side
    ``sz = sqrt((w + p)(h + p))``, p = context (w + h), the search square ``sz * 255 / 127``, each
    truncated to whole pixels and starting at ``int(centre) - (side + 1) // 2``, padded with the
    frame's mean colour and resized bilinearly. Point ``(i, j)`` sits at crop pixel
    ``(127 + 16 (j - 8), 127 + 16 (i - 8))``; the head gives its box as distances (left, top, right,
    bottom). Each point's score (softmax over background and target) is damped for changing the size
    or the aspect ratio (pysot's penalty), mixed with a cosine window (OpenCV's
    ``createHanningWindow``: the square root of the outer product of two Hann windows, not pysot's
    product) and the best point wins: the centre moves to its box's (crop pixels read as ``sz / 127``
    frame pixels), the size follows its box at rate ``lr`` times its penalised score, and the centre
    is kept in the frame and the size between 10 px and the frame's.
    """

    def __init__(self, model: SiamModel, cfg: NanoTrackerConfig | None = None, name: str = "NanoTrack") -> None:
        super().__init__(name, is_deterministic=True)
        self.model = model.eval()
        self.cfg = cfg or NanoTrackerConfig()
        mc = model.cfg
        self.exemplar_sz, self.instance_sz, self.stride = mc.exemplar_sz, mc.instance_sz, mc.stride
        self.device = next(model.parameters(), torch.empty(0)).device
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self.last_score = 0.0

    def _crop(self, img: np.ndarray, side: int, out_size: int) -> torch.Tensor:
        crop = nano_crop(img, self.pos, side, out_size)
        batch = torch.from_numpy(crop).to(self.device).permute(2, 0, 1)[None].float()
        return self.model.normalise(batch)

    def _points(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """Each score-map point's crop pixel ``(x, y)``, both ``side`` x ``side``, and the cosine window."""
        if self._grid is None or self._grid[1].shape[0] != side:
            offsets = (np.arange(side) - side // 2) * self.stride + self.instance_sz // 2
            xs, ys = np.meshgrid(offsets, offsets)
            self._grid = np.stack([xs, ys]).astype(np.float64), cv2.createHanningWindow((side, side), cv2.CV_32F)
        return self._grid

    def init(self, image: Any, box: np.ndarray) -> None:
        img = np.asarray(image)
        if not is_valid_box(box):
            raise InputError(f"initial box {np.asarray(box).tolist()} is not a finite box with positive size")
        x, y, w, h = (float(v) for v in box)
        self.pos = np.array([x - 1 + w / 2, y - 1 + h / 2])   # 1-based box -> pixel-edge centre
        self.size = np.array([w, h])
        side = int(context_side(w, h, self.cfg.context))
        with torch.no_grad():
            self.kernel = self.model.head.prepare(self.model.embed(self._crop(img, side, self.exemplar_sz)))

    def _search(self, img: np.ndarray, sz: float) -> tuple[np.ndarray, np.ndarray]:
        """The target score (softmax) and the (left, top, right, bottom) distances at each point of the
        search crop around the current position, ``sz`` the exemplar side in frame pixels."""
        with torch.no_grad():
            crop = self._crop(img, int(sz * self.instance_sz / self.exemplar_sz), self.instance_sz)
            out = self.model.head.respond(self.kernel, self.model.embed(crop))
            cls, loc = out["cls"][0].float(), out["loc"][0].float()
            if cls.shape[0] != 2 or loc.shape[0] != 4:
                raise ValueError(f"the head gives {cls.shape[0]} cls and {loc.shape[0]} loc channels; "
                                 f"the point tracker needs 2 and 4")
            return torch.softmax(cls, dim=0)[1].double().cpu().numpy(), loc.double().cpu().numpy()

    def response(self, image: Any) -> np.ndarray:
        """The target score map (before the penalty and the window) at the current position and size: what
        the label-free path reads to pick a distinctive target."""
        return self._search(np.asarray(image), float(context_side(*self.size, self.cfg.context)))[0]

    def update(self, image: Any) -> np.ndarray:
        img = np.asarray(image)
        cfg = self.cfg
        sz = float(context_side(*self.size, cfg.context))
        scale_z = self.exemplar_sz / sz
        score, ltrb = self._search(img, sz)
        points, window = self._points(score.shape[-1])
        x1y1, x2y2 = points - ltrb[:2], points + ltrb[2:]
        bw, bh = x2y2 - x1y1

        w, h = self.size * scale_z
        s_c = _change(context_side(bw, bh) / context_side(w, h))   # context 0.5 whatever the crops'
        r_c = _change((w / h) / (bw / bh))
        penalty = np.exp(-(r_c * s_c - 1) * cfg.penalty_k)
        pscore = penalty * score * (1 - cfg.window_influence) + window * cfg.window_influence
        best = np.unravel_index(int(np.argmax(pscore)), pscore.shape)

        centre = (x1y1[:, best[0], best[1]] + x2y2[:, best[0], best[1]]) / 2
        rate = penalty[best] * score[best] * cfg.lr
        frame_h, frame_w = img.shape[:2]
        pos = self.pos + (centre - self.instance_sz // 2) / scale_z
        size = np.array([bw[best], bh[best]]) / scale_z * rate + self.size * (1 - rate)
        self.pos = np.clip(pos, 0, [frame_w, frame_h])
        self.size = np.clip(size, 10, [frame_w, frame_h])
        self.last_score = float(score[best])
        box = np.array([self.pos[0] - self.size[0] / 2, self.pos[1] - self.size[1] / 2, *self.size])
        if cfg.whole_pixels:   # only what is reported: the state stays fractional, as in OpenCV
            box = np.trunc(box)
        return box + [1, 1, 0, 0]

    def track(self, img_files: list[str], box: np.ndarray,
              visualize: bool = False) -> tuple[np.ndarray, np.ndarray]:
        return run_tracker(self, img_files, box, visualize)
