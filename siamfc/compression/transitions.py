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
  least squares so that, on sample crops, it reproduces the old conv_{i+1} output.
  This absorbs combine_i through the ReLU rather than ignoring it, and where
  combine_i mixes across conv_{i+1}'s groups (steps 2 and 6 with ``conv``
  grouping) the fit finds the best in-group approximation instead of dropping the
  out-of-group half of the composed kernel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.fd import FDChain

TRANSITIONS = ("fresh", "inherit")
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


def _top_eigvecs(cov: torch.Tensor, k: int) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    return vecs[:, torch.argsort(vals, descending=True)[:k]]


@torch.no_grad()
def init_hourglass(new: FDChain, old: FDChain, layer: int, sample: torch.Tensor) -> None:
    """PCA initialisation of squeeze_layer (and combine_layer) from ``old``'s activations."""
    old.eval()
    feats = old.trace(sample)[f"conv{layer}"].double()           # N, C, H, W (pre-BN)
    c = feats.shape[1]
    x = feats.permute(0, 2, 3, 1).reshape(-1, c)
    squeeze = getattr(new, f"squeeze{layer}")
    groups = new.plan.squeeze_groups(layer)
    k, cg = squeeze.out_channels // groups, c // groups
    w_s = torch.zeros(squeeze.weight.shape[:2], dtype=torch.float64)
    b_s = torch.zeros(squeeze.out_channels, dtype=torch.float64)
    combine = getattr(new, f"combine{layer}", None)
    if combine is not None:
        mean = x.mean(0)
        scale = _bn_scale(getattr(old, f"conv{layer}"), old.plan.base[layer - 1].bn, c)
        w_c = torch.zeros(combine.weight.shape[:2], dtype=torch.float64)
    for g in range(groups):
        ch, out = slice(g * cg, (g + 1) * cg), slice(g * k, (g + 1) * k)
        if combine is None:   # no BN after: keep the subspace of largest energy
            u = _top_eigvecs(x[:, ch].T @ x[:, ch] / len(x), k)
            w_s[out] = u.T
            continue
        y = (x[:, ch] - mean[ch]) * scale[ch]
        u = _top_eigvecs(y.T @ y / len(y), k)                     # cg x k
        w_s[out] = u.T * scale[ch]
        b_s[out] = -(u.T * scale[ch]) @ mean[ch]
        w_c[ch] = u / scale[ch, None]
    squeeze.weight.copy_(w_s[:, :, None, None].float())
    squeeze.bias.copy_(b_s.float())
    if combine is None and new.plan.base[layer - 1].bn:   # the last layer's narrowed BN sees the squeeze
        _measure_bn(getattr(new, f"conv{layer}")[1],
                    F.conv2d(feats.float(), squeeze.weight, squeeze.bias, groups=groups))
    if combine is not None:
        combine.weight.copy_(w_c[:, :, None, None].float())
        combine.bias.copy_(mean.float())


def _measure_bn(bn: torch.nn.BatchNorm2d, x: torch.Tensor) -> None:
    """Give ``bn`` the statistics of its input ``x``."""
    bn.running_mean.copy_(x.mean((0, 2, 3)))
    bn.running_var.copy_(x.var((0, 2, 3), unbiased=False))


def _bn_scale(block: torch.nn.Sequential, has_bn: bool, channels: int) -> torch.Tensor:
    """How BN_i scales each channel (|gamma| / sigma): the error metric of the PCA, so that
    the reconstruction is weighed as the next layer sees it; 1 where the layer has no BN."""
    if not has_bn:
        return torch.ones(channels, dtype=torch.float64)
    bn = block[1]
    scale = bn.weight.double().abs() / torch.sqrt(bn.running_var.double() + bn.eps)
    return scale.clamp_min(1e-3 * scale.max())


@torch.no_grad()
def output_projection(teacher: FDChain, sample: torch.Tensor, width: int, groups: int) -> torch.Tensor:
    """A fixed (width x C) map of the teacher's embedding onto its principal subspace, per
    group: once the student's embedding is narrower than the teacher's, the student is
    distilled toward the teacher's embedding seen through it. It preserves the inner
    products, and so the correlation, as well as any rank-``width`` map can."""
    feats = teacher.eval()(sample).double()
    c = feats.shape[1]
    x = feats.permute(0, 2, 3, 1).reshape(-1, c)
    k, cg = width // groups, c // groups
    proj = torch.zeros(width, c, dtype=torch.float64)
    for g in range(groups):
        ch = slice(g * cg, (g + 1) * cg)
        proj[g * k:(g + 1) * k, ch] = _top_eigvecs(x[:, ch].T @ x[:, ch] / len(x), k).T
    return proj.float()


def _ridge(x: torch.Tensor, y: torch.Tensor, lam: float = 1e-4) -> tuple[torch.Tensor, float]:
    """Least squares with a bias column and a small ridge; returns (weights, relative error)."""
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    gram = x1.T @ x1
    reg = lam * gram.diagonal().mean() * torch.eye(len(gram), dtype=x.dtype)
    w = torch.linalg.solve(gram + reg, x1.T @ y)
    err = float(((x1 @ w - y) ** 2).sum() / (y - y.mean(0)).pow(2).sum().clamp_min(1e-12))
    return w, err


@torch.no_grad()
def init_narrowed(new: FDChain, old: FDChain, layer: int, sample: torch.Tensor,
                  max_rows: int = 30000, seed: int = 0) -> float:
    """Set BN_layer from the squeezed features and fit conv_{layer+1} by least squares.

    Returns the relative residual of the fit (0 = exact).
    """
    old.eval()
    new.eval()
    trace = old.trace(sample)
    squeezed = trace[f"squeeze{layer}"]
    target = trace[f"conv{layer + 1}"].double()                 # old conv_{i+1} output
    bn_block = getattr(new, f"conv{layer}")
    has_bn = new.plan.base[layer - 1].bn
    if has_bn:
        bn = bn_block[1]
        _measure_bn(bn, squeezed)
        bn.weight.fill_(1.0)
    conv = getattr(new, f"conv{layer + 1}")[0]
    nxt = new.plan.base[layer]
    groups, k = nxt.groups, nxt.kernel
    gen = torch.Generator().manual_seed(seed)
    best = (float("inf"), None, 0.0)
    for shift in BN_SHIFTS if has_bn else (0.0,):
        if has_bn:
            bn.bias.fill_(shift)
        z = squeezed
        for m in list(bn_block)[1:]:
            z = m(z)
        cols = F.unfold(z.double(), k, padding=nxt.padding, stride=nxt.stride)   # N, Cin*k*k, L
        rows = cols.permute(0, 2, 1).reshape(-1, cols.shape[1])
        ys = target.flatten(2).permute(0, 2, 1).reshape(-1, target.shape[1])
        pick = torch.randperm(len(rows), generator=gen)[:max_rows]
        rows, ys = rows[pick], ys[pick]
        cin, cout = z.shape[1] // groups, target.shape[1] // groups
        weights, err = [], 0.0
        for g in range(groups):
            xi = rows[:, g * cin * k * k:(g + 1) * cin * k * k]
            w, e = _ridge(xi, ys[:, g * cout:(g + 1) * cout])
            weights.append(w)
            err += e / groups
        if err < best[0]:
            best = (err, weights, shift)
    err, weights, shift = best
    if weights is None:
        raise RuntimeError(f"conv{layer + 1}: the least-squares fit failed: the previous network is not finite")
    if has_bn:
        bn.bias.fill_(shift)
    w = torch.cat([wg[:-1].T for wg in weights], 0)
    conv.weight.copy_(w.reshape(conv.weight.shape).float())
    conv.bias.copy_(torch.cat([wg[-1] for wg in weights]).float())
    return err


def refine_narrowed(new: FDChain, old: FDChain, layer: int, sample: torch.Tensor, iters: int = 300,
                    lr: float = 1e-3, batch: int = 8, seed: int = 0) -> float:
    """After :func:`init_narrowed`, refine squeeze_layer, BN_layer and conv_{layer+1} together
    so that the narrowed layer reproduces the old conv_{layer+1} output on ``sample``.

    The least-squares fit can only choose conv_{layer+1}; the squeeze, fixed since the
    odd step, decides what survives the ReLU. This is a small local regression on
    cached activations (Adam, error weighed by how BN_{layer+1} scales each channel),
    far cheaper than end-to-end training. Returns the relative residual afterwards.
    """
    old.eval()
    with torch.no_grad():
        trace = old.trace(sample)
        source = trace[f"conv{layer}"]                           # conv_i output, the same in both networks
        target = trace[f"conv{layer + 1}"]
        scale = _bn_scale(getattr(old, f"conv{layer + 1}"), old.plan.base[layer].bn, target.shape[1])
        weight = (scale ** 2 / (scale ** 2).mean()).float()[None, :, None, None]
        centred = target - target.mean((0, 2, 3), keepdim=True)
        energy = float((weight * centred ** 2).mean())
    squeeze, block, conv = getattr(new, f"squeeze{layer}"), getattr(new, f"conv{layer}"), getattr(new, f"conv{layer + 1}")[0]
    params = list(squeeze.parameters()) + [p for m in list(block)[1:] for p in m.parameters()] + list(conv.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    modes = [m.training for m in block]

    def residual(idx: torch.Tensor) -> torch.Tensor:
        z = squeeze(source[idx])
        for m in list(block)[1:]:
            z = m(z)
        return (weight * (conv(z) - target[idx]) ** 2).mean() / max(energy, 1e-12)

    def total() -> float:
        with torch.no_grad():
            return float(sum(residual(torch.arange(i, min(i + batch, len(source)))) * min(batch, len(source) - i)
                             for i in range(0, len(source), batch)) / len(source))

    block.eval()   # BN keeps the statistics init_narrowed measured; its affine parameters move
    try:
        before = total()
        for _ in range(iters):
            idx = torch.randint(len(source), (min(batch, len(source)),), generator=gen)
            loss = residual(idx)
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
