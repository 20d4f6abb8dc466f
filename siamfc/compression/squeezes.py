"""The odd step's closed-form start: squeeze_i (and combine_i) after conv_i, and the last layer's projection.

``pca`` squeezes are the best rank-sC linear bottleneck of conv_i's output (a reduced-rank
regression onto the target's, weighed as BN_i scales each channel); ``select`` squeezes keep sC of
conv_i's channels, chosen so that conv_{i+1} refitted on them best reproduces the target. See
:mod:`.transitions` for how the steps use them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.fd import FDChain
from .fit_moments import (Moments, Sample, activation_pairs, as_rows, bn_scale, chunks, measure_bn, pick_rows,
                          top_eigvecs)


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
    scale = bn_scale(getattr(old, f"conv{layer}"), has_bn, c) if combine is not None else torch.ones(c, dtype=torch.float64)
    moments = [Moments() for _ in range(groups)]
    gen = torch.Generator().manual_seed(seed)
    for src, dst in activation_pairs(old, ref, sample, f"conv{layer}", layer):
        pick = pick_rows(len(src), src.shape[2] * src.shape[3], gen)
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
        u = top_eigvecs(second, k)
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
        measure_bn(getattr(new, f"conv{layer}")[1],
                    (squeeze(old.trace(x, upto=layer)[f"conv{layer}"]) for x in chunks(sample)))
    if combine is not None:
        combine.weight.copy_(w_c[:, :, None, None].float())
        combine.bias.copy_(b_c.float())
    return residual



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
        proj[g * k:(g + 1) * k, ch] = top_eigvecs(second[ch, ch], k).T
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
        rows = as_rows(pre, pick_rows(len(x), pre.shape[2] * pre.shape[3], gen))
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

