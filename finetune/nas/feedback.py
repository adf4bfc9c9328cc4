"""Seed 004's feedback blocks: meta-kernels trained in parallel, merged each step with loss-based weights.

β_i = tanh(1/L_i) / Σ_j tanh(1/L_j) and K_1' = … = K_P' = Σ_i β_i K_i: the kernel set whose loss L_i is
lower ("closer to the expected kernel") has more influence; the β_i sum to 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from finetune.nas.network import SuperNet
from metafeatures.errors import ConfigError


def feedback_weights(losses: Sequence[float]) -> list[float]:
    """β_i = tanh(1/L_i) / Σ_j tanh(1/L_j) for the losses L_i ≥ 0 of the parallel kernel sets (L = 0 gives
    tanh(∞) = 1)."""
    values = [float(v) for v in losses]
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise ConfigError("losses", list(losses), "need one or more finite, non-negative losses")
    t = [math.tanh(1.0 / v) if v > 0 else 1.0 for v in values]
    total = sum(t)
    return [v / total for v in t]


@torch.no_grad()
def apply_feedback(net: SuperNet, losses: Sequence[float]) -> list[float]:
    """Replace every parallel meta-kernel set of ``net`` by the β-weighted sum of the sets; returns β."""
    beta = feedback_weights(losses)
    for conv in net.meta_convs():
        if conv.copies != len(beta):
            raise ConfigError("losses", list(losses), f"need one loss per kernel set ({conv.copies})")
        for kernel in conv.kernels:
            merged = sum(b * kernel[i] for i, b in enumerate(beta))
            kernel.copy_(merged.unsqueeze(0).expand_as(kernel))  # type: ignore[union-attr]
    return beta
