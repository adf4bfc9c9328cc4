"""Candidate operations of seed 004's search space, including meta-kernels and the 11×11 depthwise stem.

Convolutional edges are depthwise-separable (ReLU → depthwise → pointwise → BatchNorm, as in DARTS).
A meta-kernel convolution sums depthwise 3×3, 5×5 and 7×7 filters; by the additivity of convolution
(K1∗I + K2∗I = (K1+K2)∗I) it collapses into one 7×7 depthwise filter for inference (``merged()``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

META_SIZES: tuple[int, ...] = (3, 5, 7)

EDGE_OPS: tuple[str, ...] = ("skip", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "dil_conv_3x3", "meta_conv_7x7")
STEM_OPS: tuple[str, ...] = ("sep_dw_11x11", "conv_3x3")


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a (…, k, k) kernel to (…, size, size), centred (odd k and size)."""
    p = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, (p, p, p, p)) if p else kernel


class SepConv(nn.Module):
    """ReLU → depthwise k×k (stride, dilation) → pointwise 1×1 → BatchNorm: the inference form of every
    convolutional edge, and the merged form of a meta-kernel convolution."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int = 1) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.dw = nn.Conv2d(c_in, c_in, kernel, stride, padding=dilation * (kernel // 2), dilation=dilation,
                            groups=c_in, bias=False)
        self.pw = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the separable convolution."""
        return self.bn(self.pw(self.dw(self.relu(x))))


class MetaKernelConv(nn.Module):
    """Separable convolution whose depthwise filter is the sum of 3×3, 5×5 and 7×7 kernels (seed 004).

    It keeps ``copies`` parallel sets of meta-kernels for the feedback blocks: ``active`` selects the set
    a forward pass uses, and :func:`finetune.nas.feedback.apply_feedback` merges the sets after each step.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, copies: int = 1) -> None:
        super().__init__()
        self.c_in, self.stride, self.copies, self.active = c_in, stride, copies, 0
        self.relu = nn.ReLU(inplace=False)
        self.kernels = nn.ParameterList()
        for k in META_SIZES:
            weight = torch.empty(c_in, 1, k, k)
            nn.init.kaiming_uniform_(weight, a=5 ** 0.5)  # nn.Conv2d's default initialisation
            self.kernels.append(nn.Parameter(weight.unsqueeze(0).repeat(copies, 1, 1, 1, 1)))
        self.pw = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the three depthwise convolutions (unmerged, as trained), then pointwise and BatchNorm."""
        x = self.relu(x)
        y = sum(F.conv2d(x, k[self.active], stride=self.stride, padding=k.shape[-1] // 2, groups=self.c_in)
                for k in self.kernels)
        return self.bn(self.pw(y))

    def merged_kernel(self, copy: int = 0) -> torch.Tensor:
        """The single 7×7 depthwise kernel equal to the sum of the padded 3×3, 5×5 and 7×7 kernels."""
        size = max(META_SIZES)
        return sum(pad_kernel(k[copy].detach(), size) for k in self.kernels)  # type: ignore[return-value]

    def merged(self, copy: int = 0) -> SepConv:
        """An inference module with one 7×7 depthwise convolution giving the same outputs."""
        out = SepConv(self.c_in, self.pw.out_channels, max(META_SIZES), self.stride)
        with torch.no_grad():
            out.dw.weight.copy_(self.merged_kernel(copy))
            out.pw.weight.copy_(self.pw.weight)
        out.bn.load_state_dict(self.bn.state_dict())
        return out.train(self.training)

    def single(self, copy: int = 0) -> MetaKernelConv:
        """An unmerged one-copy module with the weights of set ``copy`` (the discrete network's form)."""
        out = MetaKernelConv(self.c_in, self.pw.out_channels, self.stride, copies=1)
        with torch.no_grad():
            for dst, src in zip(out.kernels, self.kernels, strict=True):
                dst.copy_(src[copy: copy + 1])
            out.pw.weight.copy_(self.pw.weight)
        out.bn.load_state_dict(self.bn.state_dict())
        return out.train(self.training)


class SepDWStem(nn.Module):
    """Seed 004's first step: a depthwise 11×11 convolution on the image (stride 2), pointwise to C, BN, ReLU."""

    def __init__(self, c_out: int, kernel: int = 11) -> None:
        super().__init__()
        self.dw = nn.Conv2d(3, 3, kernel, 2, padding=kernel // 2, groups=3, bias=False)
        self.pw = nn.Conv2d(3, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the stem."""
        return F.relu(self.bn(self.pw(self.dw(x))))


def _conv_stem(c_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, c_out, 3, 2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def _skip(c: int, stride: int) -> nn.Module:
    # within a cell every node has C channels: a reduction skip is a parameter-free 2×2 average
    return nn.Identity() if stride == 1 else nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False)


EdgeBuilder = Callable[[int, int, int], nn.Module]

_EDGE_BUILDERS: dict[str, EdgeBuilder] = {
    "skip": lambda c, stride, copies: _skip(c, stride),
    "max_pool_3x3": lambda c, stride, copies: nn.MaxPool2d(3, stride, padding=1),
    "avg_pool_3x3": lambda c, stride, copies: nn.AvgPool2d(3, stride, padding=1, count_include_pad=False),
    "sep_conv_3x3": lambda c, stride, copies: SepConv(c, c, 3, stride),
    "dil_conv_3x3": lambda c, stride, copies: SepConv(c, c, 3, stride, dilation=2),
    "meta_conv_7x7": lambda c, stride, copies: MetaKernelConv(c, c, stride, copies),
}


def build_edge_op(name: str, channels: int, stride: int, copies: int = 1) -> nn.Module:
    """The edge operation ``name`` on ``channels`` channels (stride 1 or 2); ``copies`` > 1 only matters
    for meta-kernel convolutions (feedback blocks)."""
    return _EDGE_BUILDERS[name](channels, stride, copies)


def build_stem_op(name: str, channels: int) -> nn.Module:
    """The stem operation ``name`` (image → ``channels`` maps at half resolution)."""
    return SepDWStem(channels) if name == "sep_dw_11x11" else _conv_stem(channels)


def merge_meta_kernels(module: nn.Module) -> nn.Module:
    """Replace every MetaKernelConv in ``module`` by its merged 7×7 form (in place for containers); returns
    the merged module (a new one when ``module`` itself is a MetaKernelConv)."""
    if isinstance(module, MetaKernelConv):
        return module.merged()
    for name, child in list(module.named_children()):
        if isinstance(child, MetaKernelConv):
            setattr(module, name, child.merged())
        else:
            merge_meta_kernels(child)
    return module
