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

from ..models.backbone import GROUPS, KERNELS
from ..models.fd import FDAlexNet

TRANSITIONS = ("fresh", "inherit")
BN_SHIFTS = (0.0, 0.5, 1.0)   # candidate BN_i offsets tried by the least-squares fit


def carry_over(new: FDAlexNet, old_state: dict[str, torch.Tensor]) -> list[str]:
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
def init_hourglass(new: FDAlexNet, old: FDAlexNet, layer: int, sample: torch.Tensor) -> None:
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
        bn = getattr(old, f"conv{layer}")[1]
        scale = (bn.weight.double().abs() / torch.sqrt(bn.running_var.double() + bn.eps))
        scale = scale.clamp_min(1e-3 * scale.max())
        mean = x.mean(0)
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
    if combine is not None:
        combine.weight.copy_(w_c[:, :, None, None].float())
        combine.bias.copy_(mean.float())


def _ridge(x: torch.Tensor, y: torch.Tensor, lam: float = 1e-4) -> tuple[torch.Tensor, float]:
    """Least squares with a bias column and a small ridge; returns (weights, relative error)."""
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    gram = x1.T @ x1
    reg = lam * gram.diagonal().mean() * torch.eye(len(gram), dtype=x.dtype)
    w = torch.linalg.solve(gram + reg, x1.T @ y)
    err = float(((x1 @ w - y) ** 2).sum() / (y - y.mean(0)).pow(2).sum().clamp_min(1e-12))
    return w, err


@torch.no_grad()
def init_narrowed(new: FDAlexNet, old: FDAlexNet, layer: int, sample: torch.Tensor,
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
    bn = bn_block[1]
    mean = squeezed.mean((0, 2, 3))
    var = squeezed.var((0, 2, 3), unbiased=False)
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(var)
    bn.weight.fill_(1.0)
    conv = getattr(new, f"conv{layer + 1}")[0]
    groups, k = GROUPS[layer], KERNELS[layer]
    gen = torch.Generator().manual_seed(seed)
    best = (float("inf"), None, 0.0)
    for shift in BN_SHIFTS:
        bn.bias.fill_(shift)
        z = squeezed
        for m in list(bn_block)[1:]:
            z = m(z)
        cols = F.unfold(z.double(), k)                            # N, Cin*k*k, L
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
    bn.bias.fill_(shift)
    w = torch.cat([wg[:-1].T for wg in weights], 0)
    conv.weight.copy_(w.reshape(conv.weight.shape).float())
    conv.bias.copy_(torch.cat([wg[-1] for wg in weights]).float())
    return err
