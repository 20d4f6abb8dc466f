"""BatchNorm layers that were folded away: find them and give them real statistics; and a conv + BN
read as one affine map, for the folds that remove a BN.

Some released networks (``SiamFC_VID.pth``) carry BN layers that are the identity
(mean 0, variance 1, weight 1, bias 0) because BN was folded into the convs. In
eval mode that is exact, but training in train mode would normalise with batch
statistics nowhere near 0 and 1 and change the function at once. Re-expressing
such a layer with the statistics of its real input (mean mu, variance v) and the
affine parameters that undo them (weight sqrt(v + eps), bias mu) keeps the eval
function unchanged and makes train-mode batch statistics agree with it.
"""
from __future__ import annotations

import torch
from torch import nn


def conv_bn_affine(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``bn(conv(x))`` (eval mode) as one conv's weight (the conv's shape) and bias, float64."""
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(len(w), dtype=torch.float64)
    if bn is not None:
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        w = w * scale.view(-1, *[1] * (w.dim() - 1))
        b = scale * (b - bn.running_mean.double()) + bn.bias.detach().double()
    return w, b


def is_identity(bn: nn.BatchNorm2d, tol: float = 1e-6) -> bool:
    return (bn.running_mean.abs().max() <= tol and (bn.running_var - 1).abs().max() <= tol
            and (bn.weight - 1).abs().max() <= tol and bn.bias.abs().max() <= tol)


def identity_bns(module: nn.Module) -> list[str]:
    return [name for name, m in module.named_modules() if isinstance(m, nn.BatchNorm2d) and is_identity(m)]


@torch.no_grad()
def reexpress_identity_bns(module: nn.Module, sample: torch.Tensor) -> list[str]:
    """Give every identity BN of ``module`` the statistics of its input on ``sample``
    (a batch of images), without changing what ``module`` computes in eval mode.

    Returns the names of the layers changed.
    """
    names = set(identity_bns(module))
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    for name, m in module.named_modules():
        if name in names:
            def grab(mod: nn.Module, inp: tuple, out: torch.Tensor, name: str = name) -> None:
                x = inp[0].double()
                stats[name] = (x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False))
            hooks.append(m.register_forward_hook(grab))
    was_training = module.training
    try:
        module.eval()(sample)
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
    for name, m in module.named_modules():
        if name in stats:
            mean, var = stats[name]
            m.running_mean.copy_(mean.float())
            m.running_var.copy_(var.float())
            m.weight.copy_(torch.sqrt(var + m.eps).float())
            m.bias.copy_(mean.float())
    return sorted(stats)
