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

The odd step's fits live in :mod:`.squeezes`, the streamed least-squares moments that
both use in :mod:`.fit_moments`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.fd import FDChain
from .fit_moments import Moments, Sample, as_rows, batches, bn_scale, chunks, measure_bn, pick_rows
from .squeezes import selected_channels

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
        measure_bn(bn, (old.trace(x, upto=layer)[f"squeeze{layer}"] for x in chunks(sample)))
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
        pick = pick_rows(len(x), target.shape[2] * target.shape[3], gen)
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
        scale = bn_scale(getattr(ref, f"conv{layer + 1}"), ref.plan.base[layer].bn, c)
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
