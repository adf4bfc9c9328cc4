"""The supernet searched over (every edge a softmax(α)-weighted mix of candidates) and the discrete network.

Seed 004 eq. (9): ō^(i,j)(x) = Σ_o exp(α_o) / Σ_o' exp(α_o') · o(x). The discrete network keeps one
operation per edge; its children ``stem``, ``cell1`` … are the blocks of the ``last_k`` strategy.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from finetune.nas.ops import MetaKernelConv, build_edge_op, build_stem_op, merge_meta_kernels
from finetune.nas.space import Genotype, SearchSpace


def _preprocess(c_in: int, c: int) -> nn.Module:
    """Node 0 of a cell: ReLU → 1×1 convolution to C channels → BatchNorm."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c))


class MixedOp(nn.Module):
    """All candidate operations of one edge, summed with the weights given to ``forward``."""

    def __init__(self, ops: list[nn.Module]) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Σ_o w_o · o(x)."""
        return sum(w * op(x) for w, op in zip(weights, self.ops, strict=True))  # type: ignore[return-value]


class _Cell(nn.Module):
    """Shared wiring of search and discrete cells: node 0 = preprocess(input); node j sums its two edges."""

    def __init__(self, space: SearchSpace, c_in: int, c: int, reduce: bool, edges: Sequence[nn.Module]) -> None:
        super().__init__()
        self.pairs = space.edges
        self.n_nodes = space.n_nodes
        self.pre = _preprocess(c_in, c)
        self.edges = nn.ModuleList(edges)

    def _run(self, x: torch.Tensor, apply: list) -> torch.Tensor:
        nodes = [self.pre(x)]
        for j in range(1, self.n_nodes + 1):
            nodes.append(sum(apply[e](nodes[i]) for e, (i, jj) in enumerate(self.pairs) if jj == j))
        return torch.cat(nodes[1:], dim=1)


def _strides(space: SearchSpace, reduce: bool) -> list[int]:
    return [2 if reduce and i == 0 else 1 for i, _ in space.edges]


class SearchCell(_Cell):
    """A cell of the supernet: a MixedOp on every edge."""

    def __init__(self, space: SearchSpace, c_in: int, c: int, reduce: bool, copies: int) -> None:
        edges = [MixedOp([build_edge_op(o, c, s, copies) for o in space.edge_ops]) for s in _strides(space, reduce)]
        super().__init__(space, c_in, c, reduce, edges)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights`` (n_edges, n_ops): softmax(α) of this cell."""
        apply = [lambda t, e=e: self.edges[e](t, weights[e]) for e in range(len(self.edges))]
        return self._run(x, apply)


class DerivedCell(_Cell):
    """A cell of the discrete network: one operation per edge."""

    def __init__(self, space: SearchSpace, c_in: int, c: int, reduce: bool, ops: tuple[str, ...]) -> None:
        strides = _strides(space, reduce)
        super().__init__(space, c_in, c, reduce, [build_edge_op(o, c, s) for o, s in zip(ops, strides, strict=True)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The cell's output (concatenated nodes 1..N)."""
        return self._run(x, list(self.edges))


def _cell_inputs(space: SearchSpace) -> list[tuple[int, int, bool]]:
    """(input channels, node width, is reduction) of each cell."""
    out, c_in = [], space.channels
    for kind, c in zip(space.cells, space.cell_channels(), strict=True):
        out.append((c_in, c, kind == "reduce"))
        c_in = c * space.n_nodes
    return out


class SuperNet(nn.Module):
    """The search network: mixed stem, search cells, global pooling and a linear classifier; α apart from w."""

    def __init__(self, space: SearchSpace, n_classes: int, copies: int = 1) -> None:
        super().__init__()
        self.space = space
        self.stem = MixedOp([build_stem_op(o, space.channels) for o in space.stem_ops])
        self.cells = nn.ModuleList(SearchCell(space, c_in, c, r, copies) for c_in, c, r in _cell_inputs(space))
        self.classifier = nn.Linear(space.out_channels, n_classes)
        self.alpha_stem = nn.Parameter(1e-3 * torch.randn(len(space.stem_ops)))
        self.alpha_cells = nn.Parameter(1e-3 * torch.randn(len(space.cells), len(space.edges), len(space.edge_ops)))

    def arch_parameters(self) -> list[nn.Parameter]:
        """α (the architecture parameters)."""
        return [self.alpha_stem, self.alpha_cells]

    def weight_parameters(self) -> list[nn.Parameter]:
        """w (every parameter except α)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def meta_convs(self) -> list[MetaKernelConv]:
        """Every meta-kernel convolution (the feedback blocks act on these)."""
        return [m for m in self.modules() if isinstance(m, MetaKernelConv)]

    def set_copy(self, index: int) -> None:
        """Make every meta-kernel convolution use its parallel kernel set ``index``."""
        for m in self.meta_convs():
            m.active = index

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map of the mixed network."""
        x = self.stem(x, F.softmax(self.alpha_stem, dim=0))
        weights = F.softmax(self.alpha_cells, dim=-1)
        for k, cell in enumerate(self.cells):
            x = cell(x, weights[k])
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class DerivedNet(nn.Sequential):
    """The discrete network of a genotype: image (N, 3, H, W) → feature map (N, out_channels, h, w)."""

    def __init__(self, space: SearchSpace, genotype: Genotype, merged: bool = True) -> None:
        genotype.validate(space)
        blocks: list[tuple[str, nn.Module]] = [("stem", build_stem_op(genotype.stem, space.channels))]
        for k, ((c_in, c, r), ops) in enumerate(zip(_cell_inputs(space), genotype.cells, strict=True)):
            blocks.append((f"cell{k + 1}", DerivedCell(space, c_in, c, r, ops)))
        super().__init__(OrderedDict(blocks))
        self.space, self.genotype = space, genotype
        if merged:
            merge_meta_kernels(self)

    @staticmethod
    def block_names_of(space: SearchSpace) -> tuple[str, ...]:
        """Names of the blocks of a space's discrete networks, in forward order."""
        return ("stem", *(f"cell{k + 1}" for k in range(len(space.cells))))


def derive(supernet: SuperNet, genotype: Genotype, merged: bool = True) -> DerivedNet:
    """The discrete network of ``genotype`` with the weights the supernet learned for the chosen operations
    (kernel set 0 of meta-kernels), merged into single kernels unless ``merged`` is False."""
    space = supernet.space
    net = DerivedNet(space, genotype, merged=False)
    stem_src = supernet.stem.ops[space.stem_ops.index(genotype.stem)]
    net.get_submodule("stem").load_state_dict(stem_src.state_dict())
    for k, ops in enumerate(genotype.cells):
        src: SearchCell = supernet.cells[k]  # type: ignore[assignment]
        dst: DerivedCell = net.get_submodule(f"cell{k + 1}")  # type: ignore[assignment]
        dst.pre.load_state_dict(src.pre.state_dict())
        for e, name in enumerate(ops):
            chosen: nn.Module = src.edges[e].ops[space.edge_ops.index(name)]  # type: ignore[index,assignment]
            if isinstance(chosen, MetaKernelConv):
                chosen = chosen.single(0)
            dst.edges[e].load_state_dict(chosen.state_dict())
    net.train(supernet.training)
    return merge_meta_kernels(net) if merged else net  # type: ignore[return-value]
