"""Initial weights of a compression step, from the previous step's network.

``fresh`` (the paper): layers carried over keep their weights, new or reshaped ones
start from SiamFC's random initialisation.

``inherit`` starts each step from what the previous one knew:

* odd step (squeeze_i + combine_i inserted after conv_i): the hourglass starts as
  the best rank-sC linear bottleneck, i.e. PCA of conv_i's output in BN_i's
  normalised space (so the reconstruction error is measured as the next layer
  sees it), per squeeze group. Step 9 (squeeze_5, no BN, no combine) keeps the
  principal subspace of the raw embedding, which best preserves its inner
  products and so the cross-correlation.
* even step (combine_i removed, BN_i and conv_{i+1} narrowed): BN_i's statistics
  are measured on the distilled (squeezed) features, and conv_{i+1} is fitted by
  least squares so that, on sample crops, it reproduces the target conv_{i+1} output.
  This absorbs combine_i through the ReLU rather than ignoring it, and where
  combine_i mixes across conv_{i+1}'s groups (steps 2 and 6 with ``conv``
  grouping) the fit finds the best in-group approximation instead of dropping the
  out-of-group half of the composed kernel.

The target of every fit is set by ``targets``: ``teacher`` (asymmetric
reconstruction) aims at the teacher's own activations, so each step corrects the
error that earlier steps left in its input instead of copying it; ``previous``
aims at the previous step's network, whose errors then compound. With the teacher
as target the odd step's hourglass is a reduced-rank regression from the
student's conv_i output onto the teacher's, which is PCA when the two agree.

The fits accumulate their normal equations over chunks of the sample, so the
number of calibration crops is bounded by time, not memory.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from ..models.fd import FDChain

Sample = Sequence[torch.Tensor]   # batches of crops; sizes may differ between batches

TRANSITIONS = ("fresh", "inherit")
TARGETS = ("teacher", "previous")
BN_SHIFTS = (0.0, 0.5, 1.0)   # candidate BN_i offsets tried by the least-squares fit


def carry_over(new: FDChain, old_state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor whose name and shape match; returns the names not copied."""
    state = new.state_dict()
    fresh = []
    for k, v in state.items():
        if k in old_state and old_state[k].shape == v.shape:
            state[k] = old_state[k].clone()
        else:
            fresh.append(k)
    new.load_state_dict(state)
    return fresh


CHUNK = 16               # crops per forward pass of a fit
ROWS_PER_CROP = 1024     # positions of one crop that enter a fit (evenly subsampled at random)


def batches(sample: Sample | torch.Tensor) -> Sequence[torch.Tensor]:
    """A sample given as one tensor is one batch."""
    return [sample] if isinstance(sample, torch.Tensor) else sample


def chunks(sample: Sample | torch.Tensor, size: int = CHUNK) -> Iterator[torch.Tensor]:
    for batch in batches(sample):
        for i in range(0, len(batch), size):
            yield batch[i:i + size]


def as_rows(t: torch.Tensor, pick: torch.Tensor | None = None) -> torch.Tensor:
    """N, C, H, W -> rows of C (one per position), in float64."""
    rows = t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]).double()
    return rows if pick is None else rows[pick]


def _pick(n_crops: int, positions: int, gen: torch.Generator) -> torch.Tensor | None:
    total = n_crops * positions
    keep = n_crops * ROWS_PER_CROP
    return None if keep >= total else torch.randperm(total, generator=gen)[:keep]


class Moments:
    """Normal equations of a least-squares fit ``y ~ [x, 1] w``, accumulated over chunks."""

    def __init__(self) -> None:
        self.xx: torch.Tensor | None = None
        self.xy = self.ysum = None
        self.yy = 0.0
        self.n = 0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
        xx, xy = x1.T @ x1, x1.T @ y
        if self.xx is None:
            self.xx, self.xy, self.ysum = xx, xy, y.sum(0)
        else:
            self.xx += xx
            self.xy += xy
            self.ysum += y.sum(0)
        self.yy += float((y * y).sum())
        self.n += len(x)

    def solve(self, lam: float = 1e-4) -> tuple[torch.Tensor, float]:
        """Weights ((nx + 1) x ny, bias last) with a small ridge, and the relative residual
        (residual energy over the target's variance; 0 = exact)."""
        if self.xx is None:
            raise RuntimeError("a least-squares fit saw no data")
        reg = lam * self.xx.diagonal().mean() * torch.eye(len(self.xx), dtype=self.xx.dtype)
        w = torch.linalg.solve(self.xx + reg, self.xy)
        sse = self.yy - 2 * float((w * self.xy).sum()) + float((w * (self.xx @ w)).sum())
        return w, max(sse, 0.0) / self.variance()

    def variance(self) -> float:
        """The target's summed variance (times n): what a relative residual is relative to."""
        return max(self.yy - float((self.ysum ** 2).sum()) / self.n, 1e-12)

    def fitted_moment(self, w: torch.Tensor) -> torch.Tensor:
        """Second moment of the fitted values, E[yhat yhat^T]."""
        return w.T @ self.xx @ w / self.n


def _top_eigvecs(cov: torch.Tensor, k: int) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    return vecs[:, torch.argsort(vals, descending=True)[:k]]


def _pairs(old: FDChain, ref: FDChain | None, sample: Sample, name: str,
           upto: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(old's, the target's) activation ``name`` on each chunk of the sample."""
    with torch.no_grad():
        for x in chunks(sample):
            src = old.trace(x, upto=upto)[name]
            yield src, (src if ref is None else ref.trace(x, upto=upto)[name])


@torch.no_grad()
def init_hourglass(new: FDChain, old: FDChain, layer: int, sample: Sample, teacher: FDChain | None = None,
                   seed: int = 0) -> float:
    """Closed-form squeeze_layer (and combine_layer) from ``old``'s conv_layer output.

    Per squeeze group, a reduced-rank regression onto the target (the teacher's
    conv_layer output, or ``old``'s own when ``teacher`` is None, which makes it PCA),
    weighed as BN_layer scales each channel. Returns the relative residual of the
    rank-k reconstruction (what the hourglass loses).
    """
    old.eval()
    ref = None if teacher is None else teacher.eval()
    squeeze = getattr(new, f"squeeze{layer}")
    combine = getattr(new, f"combine{layer}", None)
    groups = new.plan.squeeze_groups(layer)
    c = getattr(old, f"conv{layer}")[0].out_channels
    k, cg = squeeze.out_channels // groups, c // groups
    has_bn = old.plan.base[layer - 1].bn
    scale = _bn_scale(getattr(old, f"conv{layer}"), has_bn, c) if combine is not None else torch.ones(c, dtype=torch.float64)
    moments = [Moments() for _ in range(groups)]
    gen = torch.Generator().manual_seed(seed)
    for src, dst in _pairs(old, ref, sample, f"conv{layer}", layer):
        pick = _pick(len(src), src.shape[2] * src.shape[3], gen)
        xs, ys = as_rows(src, pick), as_rows(dst, pick) * scale
        for g, m in enumerate(moments):
            ch = slice(g * cg, (g + 1) * cg)
            m.add(xs[:, ch], ys[:, ch])
    w_s = torch.zeros(squeeze.weight.shape[:2], dtype=torch.float64)
    b_s = torch.zeros(squeeze.out_channels, dtype=torch.float64)
    w_c = torch.zeros(c, k, dtype=torch.float64)
    b_c = torch.zeros(c, dtype=torch.float64)
    residual = 0.0
    for g, m in enumerate(moments):
        ch, out = slice(g * cg, (g + 1) * cg), slice(g * k, (g + 1) * k)
        w, err = m.solve(1e-8 if ref is None else 1e-4)
        second = m.fitted_moment(w)
        mean = m.ysum / m.n                                       # the fitted values' mean, too
        if combine is not None:
            second = second - torch.outer(mean, mean)
        u = _top_eigvecs(second, k)
        kept = float(torch.linalg.eigvalsh(second)[-k:].sum())
        # rank-k residual: the regression's own error plus the fitted energy the k axes drop
        residual += (err + (float(second.trace()) - kept) * m.n / m.variance()) / groups
        if combine is None:   # no BN after: keep the subspace of largest energy (inner products)
            w_s[out], b_s[out] = u.T @ w[:-1].T, u.T @ w[-1]
            continue
        w_s[out], b_s[out] = u.T @ w[:-1].T, u.T @ (w[-1] - mean)
        w_c[ch], b_c[ch] = u / scale[ch, None], mean / scale[ch]
    squeeze.weight.copy_(w_s[:, :, None, None].float())
    squeeze.bias.copy_(b_s.float())
    if combine is None and new.plan.base[layer - 1].bn:   # the last layer's narrowed BN sees the squeeze
        _measure_bn(getattr(new, f"conv{layer}")[1],
                    (squeeze(old.trace(x, upto=layer)[f"conv{layer}"]) for x in chunks(sample)))
    if combine is not None:
        combine.weight.copy_(w_c[:, :, None, None].float())
        combine.bias.copy_(b_c.float())
    return residual


def _measure_bn(bn: torch.nn.BatchNorm2d, inputs: Iterator[torch.Tensor]) -> None:
    """Give ``bn`` the statistics of its inputs (streamed in chunks)."""
    n, total, squares = 0, 0.0, 0.0
    with torch.no_grad():
        for x in inputs:
            x = x.double()
            n += x.numel() // x.shape[1]
            total = total + x.sum((0, 2, 3))
            squares = squares + (x * x).sum((0, 2, 3))
    mean = total / n
    bn.running_mean.copy_(mean.float())
    bn.running_var.copy_((squares / n - mean * mean).clamp_min(0).float())


def _bn_scale(block: torch.nn.Sequential, has_bn: bool, channels: int) -> torch.Tensor:
    """How BN_i scales each channel (|gamma| / sigma): the error metric of the PCA, so that
    the reconstruction is weighed as the next layer sees it; 1 where the layer has no BN."""
    if not has_bn:
        return torch.ones(channels, dtype=torch.float64)
    bn = block[1]
    scale = bn.weight.double().abs() / torch.sqrt(bn.running_var.double() + bn.eps)
    return scale.clamp_min(1e-3 * scale.max())


@torch.no_grad()
def output_projection(teacher: FDChain, sample: Sample, width: int, groups: int,
                      student: FDChain | None = None) -> torch.Tensor:
    """A fixed (width x C) map of the teacher's embedding onto its principal subspace, per
    group: once the student's embedding is narrower than the teacher's, the student is
    distilled toward the teacher's embedding seen through it. It preserves the inner
    products, and so the correlation, as well as any rank-``width`` map can.

    The principal axes have arbitrary signs and order; given ``student``, the map is
    turned (an orthogonal Procrustes rotation within the subspace) onto the student's
    own embedding, so that distillation does not pull it toward a rotated copy."""
    teacher.eval()
    c = teacher.out_channels
    k, cg = width // groups, c // groups
    second = torch.zeros(c, c, dtype=torch.float64)
    for x in chunks(sample):
        rows = as_rows(teacher(x))
        second += rows.T @ rows
    proj = torch.zeros(width, c, dtype=torch.float64)
    for g in range(groups):
        ch = slice(g * cg, (g + 1) * cg)
        proj[g * k:(g + 1) * k, ch] = _top_eigvecs(second[ch, ch], k).T
    if student is not None:
        student.eval()
        cross = torch.zeros(width, width, dtype=torch.float64)
        for x in chunks(sample):
            cross += as_rows(student(x)).T @ (as_rows(teacher(x)) @ proj.T)
        u, _, vt = torch.linalg.svd(cross)
        proj = (u @ vt) @ proj
    return proj.float()


SQUEEZES = ("pca", "select")
SELECT_ROWS_PER_CROP = 256   # positions per crop in the selection's normal equations


def _greedy_channels(xx: torch.Tensor, xy: torch.Tensor, yy_var: float, kk: int, quotas: list[tuple[list[int], int]],
                     ridge: float = 1e-4) -> tuple[list[int], float]:
    """Forward selection of input channels (blocks of ``kk`` features of a centred Gram
    ``xx`` with cross moments ``xy``), taking ``count`` from each listed channel pool, each
    time the channel whose features explain the most of the target's variance once the
    next conv is refitted on the chosen ones. Returns the channels and the relative residual."""
    xx = xx + ridge * xx.diagonal().mean() * torch.eye(len(xx), dtype=xx.dtype)
    chosen: list[int] = []
    left = {i: count for i, (_, count) in enumerate(quotas)}
    pool_of = {c: i for i, (pool, _) in enumerate(quotas) for c in pool}
    explained = 0.0
    while any(left.values()):
        feats = [f for c in chosen for f in range(c * kk, (c + 1) * kk)]
        if feats:
            inv = torch.linalg.inv(xx[feats][:, feats])
            proj = xx[:, feats] @ inv                             # every feature's regression on the chosen
            resid_xy = xy - proj @ xy[feats]
        else:
            proj, resid_xy = None, xy
        best = (-1.0, -1)
        for c, pool in pool_of.items():
            if c in chosen or not left[pool]:
                continue
            f = slice(c * kk, (c + 1) * kk)
            schur = xx[f, f] - (proj[f] @ xx[feats, f] if feats else 0)
            r = resid_xy[f]
            gain = float((r * torch.linalg.solve(schur, r)).sum())
            if gain > best[0]:
                best = (gain, c)
        chosen.append(best[1])
        left[pool_of[best[1]]] -= 1
        explained += best[0]
    return sorted(chosen), max(yy_var - explained, 0.0) / max(yy_var, 1e-12)


@torch.no_grad()
def init_selection(new: FDChain, old: FDChain, layer: int, sample: Sample, teacher: FDChain | None = None,
                   seed: int = 0) -> float:
    """A channel-selection squeeze_layer: it keeps sC of conv_layer's channels, chosen
    greedily so that conv_{layer+1}, refitted on them, best reproduces the target's
    conv_{layer+1} output. A selection commutes with BN, ReLU and max-pool, so the even
    step loses only what the dropped channels carried, not what the nonlinearity mixes.
    combine_layer is the least-squares reconstruction of every channel from the kept
    ones. Channels are taken evenly from each squeeze group and each group of
    conv_{layer+1}. Returns the relative residual the selection leaves."""
    old.eval()
    ref = old if teacher is None else teacher.eval()
    squeeze, combine = getattr(new, f"squeeze{layer}"), getattr(new, f"combine{layer}")
    nxt = new.plan.base[layer]
    c, k_out = squeeze.in_channels, squeeze.out_channels
    units = math.lcm(new.plan.squeeze_groups(layer), nxt.groups)
    cu, ku = c // units, k_out // units
    cin, kk = c // nxt.groups, nxt.kernel ** 2
    gen = torch.Generator().manual_seed(seed)
    stats = [[None, None, None, 0.0, 0] for _ in range(nxt.groups)]   # x sum, xx, xy, y sums, n per group
    for x in chunks(sample):
        block = old.trace(x, upto=layer)[f"block{layer}"]
        target = ref.trace(x, upto=layer + 1)[f"conv{layer + 1}"]
        cols = F.unfold(block, nxt.kernel, padding=nxt.padding, stride=nxt.stride)   # N, C*k*k, L
        rows = cols.permute(0, 2, 1).reshape(-1, cols.shape[1])
        ys = target.flatten(2).permute(0, 2, 1).reshape(-1, target.shape[1])
        positions = target.shape[2] * target.shape[3]
        keep = min(positions, SELECT_ROWS_PER_CROP)
        pick = torch.cat([i * positions + torch.randperm(positions, generator=gen)[:keep] for i in range(len(x))])
        rows, ys = rows[pick], ys[pick]
        cout = ys.shape[1] // nxt.groups
        for g, st in enumerate(stats):
            xg = rows[:, g * cin * kk:(g + 1) * cin * kk]
            yg = ys[:, g * cout:(g + 1) * cout]
            parts = (xg.sum(0).double(), (xg.T @ xg).double(), (xg.T @ yg).double())
            st[:3] = parts if st[0] is None else [a + b for a, b in zip(st[:3], parts)]
            st[3] = st[3] + torch.stack([yg.sum(0).double(), (yg.double() ** 2).sum(0)])
            st[4] += len(xg)
    chosen: list[int] = []
    residual = 0.0
    for g, (xs, xx, xy, ysums, n) in enumerate(stats):
        mean_x, mean_y = xs / n, ysums[0] / n
        cxx = xx - n * torch.outer(mean_x, mean_x)
        cxy = xy - n * torch.outer(mean_x, mean_y)
        var = float((ysums[1] - n * mean_y ** 2).sum())
        first = g * cin // cu                                      # the units feeding this group
        quotas = [(list(range(u * cu - g * cin, (u + 1) * cu - g * cin)), ku) for u in range(first, first + cin // cu)]
        picked, err = _greedy_channels(cxx, cxy, var, kk, quotas)
        chosen += [g * cin + p for p in picked]
        residual += err / nxt.groups
    chosen.sort()
    groups = new.plan.squeeze_groups(layer)
    cg, kg = c // groups, k_out // groups
    w_s = torch.zeros(k_out, cg)
    for j, ch in enumerate(chosen):   # the quotas put exactly kg kept channels in each squeeze group
        w_s[j, ch - (j // kg) * cg] = 1.0
    squeeze.weight.copy_(w_s[:, :, None, None])
    squeeze.bias.zero_()
    # combine: every pre-BN channel from the kept ones, per squeeze group
    moments = [Moments() for _ in range(groups)]
    for x in chunks(sample):
        pre = old.trace(x, upto=layer)[f"conv{layer}"]
        rows = as_rows(pre, _pick(len(x), pre.shape[2] * pre.shape[3], gen))
        kept = rows[:, chosen]
        for g, m in enumerate(moments):
            m.add(kept[:, g * kg:(g + 1) * kg], rows[:, g * cg:(g + 1) * cg])
    for g, m in enumerate(moments):
        w, _ = m.solve()
        combine.weight[g * cg:(g + 1) * cg] = w[:-1].T.float()[:, :, None, None]
        combine.bias[g * cg:(g + 1) * cg] = w[-1].float()
    return residual


def selected_channels(squeeze: torch.nn.Conv2d) -> torch.Tensor | None:
    """The kept channels (one per output, in the squeeze's group-local numbering made
    global) when ``squeeze`` is a channel selection, else None."""
    w = squeeze.weight.detach()[:, :, 0, 0]
    if squeeze.bias is not None and bool(squeeze.bias.detach().abs().max() > 0):
        return None
    if not bool(((w == 0) | (w == 1)).all()) or not bool((w.sum(1) == 1).all()):
        return None
    groups = squeeze.groups
    k, cg = squeeze.out_channels // groups, squeeze.in_channels // groups
    local = w.argmax(1)
    return local + torch.arange(squeeze.out_channels) // k * cg


@torch.no_grad()
def init_narrowed(new: FDChain, old: FDChain, layer: int, sample: Sample, teacher: FDChain | None = None,
                  seed: int = 0) -> float:
    """Set BN_layer from the squeezed features and fit conv_{layer+1} by least squares
    onto the target's conv_{layer+1} output (the teacher's, or ``old``'s when
    ``teacher`` is None).

    Returns the relative residual of the fit (0 = exact).
    """
    old.eval()
    new.eval()
    ref = None if teacher is None else teacher.eval()
    bn_block = getattr(new, f"conv{layer}")
    has_bn = new.plan.base[layer - 1].bn
    kept = selected_channels(getattr(old, f"squeeze{layer}"))
    if has_bn and kept is not None:   # a selection: the kept channels keep their own BN, as the selection assumed
        bn, old_bn = bn_block[1], getattr(old, f"conv{layer}")[1]
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(getattr(old_bn, name)[kept])
    elif has_bn:
        bn = bn_block[1]
        _measure_bn(bn, (old.trace(x, upto=layer)[f"squeeze{layer}"] for x in chunks(sample)))
        bn.weight.fill_(1.0)
    conv = getattr(new, f"conv{layer + 1}")[0]
    nxt = new.plan.base[layer]
    groups, k = nxt.groups, nxt.kernel
    shifts = BN_SHIFTS if has_bn and kept is None else (None,)
    moments = {s: [Moments() for _ in range(groups)] for s in shifts}
    gen = torch.Generator().manual_seed(seed)
    for x in chunks(sample):
        squeezed = old.trace(x, upto=layer)[f"squeeze{layer}"]
        target = (ref or old).trace(x, upto=layer + 1)[f"conv{layer + 1}"]
        pick = _pick(len(x), target.shape[2] * target.shape[3], gen)
        ys = as_rows(target, pick)
        cout = target.shape[1] // groups
        for shift in shifts:
            if shift is not None:
                bn.bias.fill_(shift)
            z = squeezed
            for m in list(bn_block)[1:]:
                z = m(z)
            cols = F.unfold(z, k, padding=nxt.padding, stride=nxt.stride)   # N, Cin*k*k, L
            rows = cols.permute(0, 2, 1).reshape(-1, cols.shape[1])
            rows = (rows if pick is None else rows[pick]).double()
            cin = z.shape[1] // groups
            for g, m in enumerate(moments[shift]):
                m.add(rows[:, g * cin * k * k:(g + 1) * cin * k * k], ys[:, g * cout:(g + 1) * cout])
    best = (float("inf"), None, 0.0)
    for shift in shifts:
        solved = [m.solve() for m in moments[shift]]
        err = sum(e for _, e in solved) / groups
        if err < best[0]:
            best = (err, [w for w, _ in solved], shift)
    err, weights, shift = best
    if weights is None:
        raise RuntimeError(f"conv{layer + 1}: the least-squares fit failed: the previous network is not finite")
    if shift is not None:
        bn.bias.fill_(shift)
    w = torch.cat([wg[:-1].T for wg in weights], 0)
    conv.weight.copy_(w.reshape(conv.weight.shape).float())
    conv.bias.copy_(torch.cat([wg[-1] for wg in weights]).float())
    return err


def refine_narrowed(new: FDChain, old: FDChain, layer: int, sample: Sample, iters: int = 300,
                    lr: float = 1e-3, batch: int = 8, seed: int = 0, teacher: FDChain | None = None,
                    images: int = 64) -> float:
    """After :func:`init_narrowed`, refine squeeze_layer, BN_layer and conv_{layer+1} together
    so that the narrowed layer reproduces the target conv_{layer+1} output (the
    teacher's, or ``old``'s) on the first ``images`` crops of each batch of ``sample``.

    The least-squares fit can only choose conv_{layer+1}; the squeeze, fixed since the
    odd step, decides what survives the ReLU. This is a small local regression on
    cached activations (Adam, error weighed by how BN_{layer+1} scales each channel),
    far cheaper than end-to-end training. Returns the relative residual afterwards.
    """
    old.eval()
    ref = old if teacher is None else teacher.eval()
    with torch.no_grad():
        pieces = [b[:images] for b in batches(sample)]
        sources = [old.trace(b, upto=layer)[f"conv{layer}"] for b in pieces]   # the same in both networks
        targets = [ref.trace(b, upto=layer + 1)[f"conv{layer + 1}"] for b in pieces]
        c = targets[0].shape[1]
        scale = _bn_scale(getattr(ref, f"conv{layer + 1}"), ref.plan.base[layer].bn, c)
        weight = (scale ** 2 / (scale ** 2).mean()).float()[None, :, None, None]
        means = [t.mean((0, 2, 3), keepdim=True) for t in targets]
        energy = sum(float((weight * (t - m) ** 2).mean()) for t, m in zip(targets, means)) / len(targets)
    squeeze, block, conv = getattr(new, f"squeeze{layer}"), getattr(new, f"conv{layer}"), getattr(new, f"conv{layer + 1}")[0]
    params = list(squeeze.parameters()) + [p for m in list(block)[1:] for p in m.parameters()] + list(conv.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    modes = [m.training for m in block]

    def residual(j: int, idx: torch.Tensor) -> torch.Tensor:
        z = squeeze(sources[j][idx])
        for m in list(block)[1:]:
            z = m(z)
        return (weight * (conv(z) - targets[j][idx]) ** 2).mean() / max(energy, 1e-12)

    def total() -> float:
        with torch.no_grad():
            n = sum(len(s) for s in sources)
            return float(sum(residual(j, torch.arange(i, min(i + batch, len(s)))) * min(batch, len(s) - i)
                             for j, s in enumerate(sources) for i in range(0, len(s), batch)) / n)

    block.eval()   # BN keeps the statistics init_narrowed measured; its affine parameters move
    try:
        before = total()
        for it in range(iters):
            j = it % len(sources)
            idx = torch.randint(len(sources[j]), (min(batch, len(sources[j])),), generator=gen)
            loss = residual(j, idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
        err = total()
        print(f"  refine conv{layer + 1}: weighted residual {before:.3f} -> {err:.3f}")
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        for m, mode in zip(block, modes):
            m.train(mode)
    return err
