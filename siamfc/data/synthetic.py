"""A synthetic tracking dataset in the exact GOT-10k layout.

Each sequence is a textured target of random shape, size and aspect moving over a
textured, panning background, with scale and aspect drift, illumination change,
motion blur, look-alike distractors, occluders passing in front and targets that
leave the frame. The labels are computed from the masks that were drawn: the box
is the target's full extent clipped to the frame, ``cover`` is GOT-10k's 0-8
visible-ratio scale, ``absence`` marks frames where nothing of the target shows.

Generation is deterministic for a seed (each sequence draws from its own
SeedSequence child) and runs sequences in parallel processes. A sequence folder
appears only when complete (written under a temporary name, renamed last), so an
interrupted run resumes where it stopped.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

import cv2
import numpy as np
from tqdm import tqdm

from ..config import Config, param
from ..files import write_text
from ..workers import pool

SHAPES = ("rect", "ellipse", "diamond", "rounded", "cross", "blob")


@dataclass
class SynthConfig(Config):
    """Size and difficulty of the generated dataset."""

    train_seqs: int = param(80, ge=0)
    val_seqs: int = param(150, ge=0)
    frames: int = param(100, ge=2)          # frames per training sequence
    val_frames: int = param(30, ge=2)       # frames per validation sequence
    val_stride: int = param(1, ge=1)        # validation keeps every k-th rendered frame: k times the motion a frame
    width: int = param(320, ge=64)
    height: int = param(240, ge=64)
    seed: int = param(0, ge=0)
    jpeg_quality: int = param(90, ge=1, le=100)
    workers: int = param(2, ge=1)


# ---------------------------------------------------------------- textures

def noise_texture(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth colour noise with features about ``cell`` pixels wide (float32, 0-1)."""
    gh, gw = max(int(h / cell), 2), max(int(w / cell), 2)
    grid = rng.random((gh, gw, 3), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Multi-scale noise plus clutter shapes: texture everywhere, not a flat field."""
    img = 0.5 * noise_texture(rng, h, w, rng.uniform(40, 120))
    img += 0.3 * noise_texture(rng, h, w, rng.uniform(6, 20))
    img += 0.2 * noise_texture(rng, h, w, rng.uniform(2, 4))
    tint = rng.uniform(0.5, 1.2, 3).astype(np.float32)
    img = img * tint
    for _ in range(int(rng.integers(10, 30))):
        color = tuple(float(c) for c in rng.random(3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(4, max(5, min(h, w) // 8)))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), r, color, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(img, (x, y), (x + r, y + int(r * rng.uniform(0.3, 3))), color, -1)
    return np.clip(img, 0, 1)


def target_texture(rng: np.random.Generator, palette: np.ndarray, size: int = 96) -> np.ndarray:
    """A high-contrast pattern (stripes, checks, spots or noise) in a palette of 3 colours."""
    kind = rng.integers(0, 4)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 0:
        angle = rng.uniform(0, np.pi)
        field = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * rng.uniform(6, 18) * np.pi)
    elif kind == 1:
        f = rng.uniform(3, 8)
        field = np.sign(np.sin(xx * f * np.pi)) * np.sign(np.sin(yy * f * np.pi))
    elif kind == 2:
        field = np.sin(xx * rng.uniform(8, 20)) * np.cos(yy * rng.uniform(8, 20))
    else:
        field = noise_texture(rng, size, size, rng.uniform(6, 16))[..., 0] * 2 - 1
    noise = noise_texture(rng, size, size, 4)[..., 0]
    t = np.clip((field + 1) / 2 * 0.8 + noise * 0.2, 0, 1)[..., None]
    a, b, c = palette
    tex = np.where(t < 0.5, a + (b - a) * (t * 2), b + (c - b) * (t * 2 - 1))
    return tex.astype(np.float32)


def shape_mask(rng: np.random.Generator, kind: str, size: int = 96) -> np.ndarray:
    """An anti-aliased mask that touches all four edges (so its box is the patch)."""
    m = np.zeros((size * 4, size * 4), np.uint8)
    s = size * 4 - 1
    if kind == "rect":
        m[:] = 255
    elif kind == "ellipse":
        cv2.ellipse(m, (s // 2, s // 2), (s // 2, s // 2), 0, 0, 360, 255, -1)
    elif kind == "diamond":
        cv2.fillPoly(m, [np.array([[s // 2, 0], [s, s // 2], [s // 2, s], [0, s // 2]])], 255)
    elif kind == "rounded":
        r = s // 4
        cv2.rectangle(m, (r, 0), (s - r, s), 255, -1)
        cv2.rectangle(m, (0, r), (s, s - r), 255, -1)
        for cx, cy in ((r, r), (s - r, r), (r, s - r), (s - r, s - r)):
            cv2.circle(m, (cx, cy), r, 255, -1)
    elif kind == "cross":
        t = int(s * rng.uniform(0.3, 0.5))
        cv2.rectangle(m, ((s - t) // 2, 0), ((s + t) // 2, s), 255, -1)
        cv2.rectangle(m, (0, (s - t) // 2), (s, (s + t) // 2), 255, -1)
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radii = rng.uniform(0.6, 1.0, 9)
        pts = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], 1)
        pts = (pts - pts.min(0)) / (pts.max(0) - pts.min(0)) * s
        cv2.fillPoly(m, [pts.astype(np.int32)], 255)
    return cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


# ---------------------------------------------------------------- objects

@dataclass
class Sprite:
    """A textured shape with a position (top-left), size and velocity in pixels."""

    tex: np.ndarray
    mask: np.ndarray
    x: float
    y: float
    w: float
    h: float
    vx: float
    vy: float
    gain: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))  # own lighting, per channel

    def step(self, rng: np.random.Generator, jitter: float, bounds: tuple[int, int] | None) -> None:
        # Each object's lighting drifts on its own, so appearance changes relative to the
        # look-alikes: a tracker must be invariant to it, not just match colours.
        self.gain = np.clip(self.gain * np.exp(rng.normal(0, 0.04, 3)), 0.55, 1.6).astype(np.float32)
        self.vx += rng.normal(0, jitter)
        self.vy += rng.normal(0, jitter)
        self.x += self.vx
        self.y += self.vy
        if bounds is not None:  # bounce to stay (mostly) in view
            W, H = bounds
            if self.x < -0.3 * self.w or self.x + 0.7 * self.w > W:
                self.vx = -self.vx
            if self.y < -0.3 * self.h or self.y + 0.7 * self.h > H:
                self.vy = -self.vy


def render(frame: np.ndarray, sprite: Sprite) -> tuple[np.ndarray, float]:
    """Alpha-blend ``sprite`` into ``frame`` in place.

    Returns its alpha over the frame and the alpha mass of the whole sprite, which
    includes any part beyond the frame border (so truncation counts as hidden).
    """
    H, W = frame.shape[:2]
    alpha = np.zeros((H, W), np.float32)
    x0, y0 = int(np.floor(sprite.x)), int(np.floor(sprite.y))
    x1, y1 = int(np.ceil(sprite.x + sprite.w)), int(np.ceil(sprite.y + sprite.h))
    size = sprite.tex.shape[0]
    sx, sy = sprite.w / size, sprite.h / size
    # Maps patch pixel centres onto frame pixel centres, relative to the sprite's box.
    M = np.array([[sx, 0, sprite.x - x0 + 0.5 * sx - 0.5],
                  [0, sy, sprite.y - y0 + 0.5 * sy - 0.5]], np.float32)
    box = (x1 - x0, y1 - y0)
    a = cv2.warpAffine(sprite.mask, M, box, flags=cv2.INTER_LINEAR, borderValue=0)
    total = float(a.sum())
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if cx1 <= cx0 or cy1 <= cy0:
        return alpha, total
    tex = cv2.warpAffine(sprite.tex, M, box, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = a[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    tex = tex[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    region = frame[cy0:cy1, cx0:cx1]
    region[:] = region * (1 - a[..., None]) + np.clip(tex * sprite.gain, 0, 1) * a[..., None]
    alpha[cy0:cy1, cx0:cx1] = a
    return alpha, total


def new_sprite(rng: np.random.Generator, tex: np.ndarray, mask: np.ndarray, W: int, H: int,
               w: float, h: float, speed: float) -> Sprite:
    angle = rng.uniform(0, 2 * np.pi)
    return Sprite(tex, mask, rng.uniform(0, max(W - w, 1)), rng.uniform(0, max(H - h, 1)), w, h,
                  speed * np.cos(angle), speed * np.sin(angle))


def motion_blur(frame: np.ndarray, vx: float, vy: float) -> np.ndarray:
    length = int(min(np.hypot(vx, vy), 15))
    if length < 3:
        return frame
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    d = np.array([vx, vy]) / np.hypot(vx, vy) * c
    cv2.line(k, (int(round(c - d[0])), int(round(c - d[1]))), (int(round(c + d[0])), int(round(c + d[1]))), 1.0)
    return cv2.filter2D(frame, -1, k / k.sum())


# ---------------------------------------------------------------- sequences

@dataclass
class Rendered:
    frames: list[np.ndarray]   # RGB uint8
    boxes: np.ndarray          # x, y, w, h (1-based), clipped to the frame
    cover: np.ndarray          # 0-8
    absence: np.ndarray        # 0/1
    cut: np.ndarray            # 0/1: the frame border cuts the target
    visible: list[np.ndarray] = field(default_factory=list)  # per-frame visible alpha (keep_masks)


def cover_level(visible: float) -> int:
    """GOT-10k's 0-8 visible-ratio scale: 0 = (almost) nothing visible, 8 = fully visible."""
    if visible < 0.05:
        return 0
    if visible >= 0.999:
        return 8
    return int(np.clip(np.floor(visible * 8), 1, 7))


def render_sequence(seed: np.random.SeedSequence, n_frames: int, W: int, H: int,
                    keep_masks: bool = False) -> Rendered:
    """Render one sequence; ``keep_masks`` also returns the target's visible alpha."""
    rng = np.random.default_rng(seed)
    canvas = background(rng, 2 * H, 2 * W)
    cam = np.array([rng.uniform(0, W), rng.uniform(0, H)])
    cam_v = rng.normal(0, 1.5, 2)

    base = float(np.sqrt(W * H) * rng.uniform(0.1, 0.3))
    aspect = float(np.exp(rng.uniform(np.log(0.4), np.log(2.5))))
    w0, h0 = base * np.sqrt(aspect), base / np.sqrt(aspect)
    palette = rng.random((3, 3)).astype(np.float32)
    shape = SHAPES[rng.integers(len(SHAPES))]
    speed = base * rng.uniform(0.04, 0.3)   # pixels per frame, relative to the target's size
    target = new_sprite(rng, target_texture(rng, palette), shape_mask(rng, shape), W, H, w0, h0, speed)
    leaves = rng.random() < 0.2   # this target may drift out of the frame

    distractors = []
    for _ in range(int(rng.integers(1, 4))):
        p = np.clip(palette + rng.normal(0, 0.12, palette.shape), 0, 1).astype(np.float32)
        s = rng.uniform(0.7, 1.3)
        distractors.append(new_sprite(rng, target_texture(rng, p), shape_mask(rng, shape), W, H,
                                      w0 * s, h0 * s, rng.uniform(1, 6)))
    occluders = []
    if rng.random() < 0.6:
        ow, oh = base * rng.uniform(0.8, 2.0), base * rng.uniform(0.8, 2.0)
        occ = new_sprite(rng, target_texture(rng, rng.random((3, 3)).astype(np.float32)),
                         shape_mask(rng, SHAPES[rng.integers(len(SHAPES))]), W, H, ow, oh, 0)
        # Start away from the target and head for where it will be, so occlusion happens.
        t_hit = rng.uniform(0.3, 0.7) * n_frames
        meet = np.array([target.x + target.vx * t_hit, target.y + target.vy * t_hit])
        direction = rng.normal(0, 1, 2)
        direction /= np.linalg.norm(direction) + 1e-9
        ospeed = rng.uniform(2, 6)
        start = meet - direction * ospeed * t_hit
        occ.x, occ.y, occ.vx, occ.vy = start[0], start[1], direction[0] * ospeed, direction[1] * ospeed
        occluders.append(occ)

    light = rng.uniform(0.7, 1.3)
    light_v = rng.normal(0, 0.02)
    blur = rng.random() < 0.35
    log_scale = np.zeros(2)
    scale_v = rng.normal(0, 0.01, 2)

    out = Rendered([], np.zeros((n_frames, 4)), np.zeros(n_frames, int), np.zeros(n_frames, int),
                   np.zeros(n_frames, int))
    last_box = None
    for t in range(n_frames):
        if t > 0:
            cam_v += rng.normal(0, 0.3, 2)
            cam = np.clip(cam + cam_v, 0, [W, H])
            target.step(rng, 0.6, None if leaves else (W, H))
            scale_v = 0.9 * scale_v + rng.normal(0, 0.006, 2)
            log_scale = np.clip(log_scale + scale_v, -0.6, 0.6)
            cx, cy = target.x + target.w / 2, target.y + target.h / 2
            target.w, target.h = w0 * np.exp(log_scale[0]), h0 * np.exp(log_scale[1])
            target.x, target.y = cx - target.w / 2, cy - target.h / 2
            for d in distractors:
                d.step(rng, 0.5, (W, H))
            for o in occluders:
                o.x, o.y = o.x + o.vx, o.y + o.vy
            light_v = 0.95 * light_v + rng.normal(0, 0.01)
            light = float(np.clip(light + light_v, 0.5, 1.5))
        shift = np.float32([[1, 0, -cam[0]], [0, 1, -cam[1]]])
        frame = cv2.warpAffine(canvas, shift, (W, H), flags=cv2.INTER_LINEAR)
        for d in distractors:
            render(frame, d)
        alpha, total = render(frame, target)
        shown = alpha.copy()
        for o in occluders:
            shown *= 1 - render(frame, o)[0]
        ratio = float(shown.sum()) / max(total, 1e-6)
        if keep_masks:
            out.visible.append(shown)
        frame *= light
        if blur:
            frame = motion_blur(frame, target.vx, target.vy)
        frame += rng.standard_normal(frame.shape, dtype=np.float32) * 0.015
        out.frames.append((np.clip(frame, 0, 1) * 255).astype(np.uint8))

        x0, y0 = max(target.x, 0.0), max(target.y, 0.0)
        x1, y1 = min(target.x + target.w, W), min(target.y + target.h, H)
        inside = x1 - x0 >= 1 and y1 - y0 >= 1
        out.cut[t] = int(inside and alpha.sum() < 0.999 * total)   # the border hides part of it
        if inside:
            last_box = np.array([x0 + 1, y0 + 1, x1 - x0, y1 - y0])
        elif last_box is None:
            last_box = np.array([1.0, 1.0, 1.0, 1.0])
        out.boxes[t] = last_box
        out.cover[t] = cover_level(ratio) if inside else 0
        out.absence[t] = int(out.cover[t] == 0)
    # The first frame must show the target fully: restart from a visible state otherwise.
    if out.cover[0] < 8 or out.cut[0]:
        return render_sequence(np.random.SeedSequence(seed.generate_state(2)), n_frames, W, H, keep_masks)
    return out


def write_sequence(seq_dir: str, rendered: Rendered, quality: int) -> None:
    """Write a GOT-10k sequence folder atomically (temporary name, renamed last)."""
    tmp = seq_dir + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    h, w = rendered.frames[0].shape[:2]
    for i, frame in enumerate(rendered.frames):
        cv2.imwrite(os.path.join(tmp, f"{i + 1:08d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, quality])
    np.savetxt(os.path.join(tmp, "groundtruth.txt"), rendered.boxes, fmt="%.4f", delimiter=",")
    for name, values in (("cover", rendered.cover), ("absence", rendered.absence),
                         ("cut_by_image", rendered.cut)):
        np.savetxt(os.path.join(tmp, f"{name}.label"), values, fmt="%d")
    with open(os.path.join(tmp, "meta_info.ini"), "w") as f:
        f.write("[METAINFO]\nurl: synthetic\nobject_class: synthetic shape\n"
                f"motion_class: synthetic\nanno_fps: 10Hz\nresolution: ({w}, {h})\n")
    os.replace(tmp, seq_dir)


def subsample(r: Rendered, stride: int) -> Rendered:
    """Every ``stride``-th frame of a rendered sequence, as a camera at a lower frame rate would see it."""
    k = slice(None, None, stride)
    return Rendered(r.frames[k], r.boxes[k], r.cover[k], r.absence[k], r.cut[k], r.visible[k])


def _make_one(job: tuple[str, np.random.SeedSequence, int, int, int, int, int]) -> str:
    seq_dir, seed, n, W, H, quality, stride = job
    if not os.path.isdir(seq_dir):
        write_sequence(seq_dir, subsample(render_sequence(seed, (n - 1) * stride + 1, W, H), stride), quality)
    return seq_dir


def make_dataset(root: str, cfg: SynthConfig) -> None:
    """Generate ``root/train`` and ``root/val``; existing complete sequences are kept."""
    master = np.random.SeedSequence(cfg.seed)
    split_seeds = dict(zip(("train", "val"), master.spawn(2)))
    jobs, lists = [], {}
    for split, count, n, stride in (("train", cfg.train_seqs, cfg.frames, 1),
                                    ("val", cfg.val_seqs, cfg.val_frames, cfg.val_stride)):
        names = [f"GOT-10k_{split.capitalize()}_{i + 1:06d}" for i in range(count)]
        lists[split] = names
        os.makedirs(os.path.join(root, split), exist_ok=True)
        for name, seed in zip(names, split_seeds[split].spawn(count)):
            jobs.append((os.path.join(root, split, name), seed, n, cfg.width, cfg.height, cfg.jpeg_quality, stride))
    todo = [j for j in jobs if not os.path.isdir(j[0])]
    with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="synthetic sequences", unit="seq") as bar:
        if cfg.workers > 1 and len(todo) > 1:
            with pool(cfg.workers, start_method="fork") as executor:
                for _ in executor.map(_make_one, todo, chunksize=1):
                    bar.update(1)
        else:
            for job in todo:
                _make_one(job)
                bar.update(1)
    for split, names in lists.items():
        write_text(os.path.join(root, split, "list.txt"), "\n".join(names) + "\n")
