"""Seed 004's search: alternating first-order updates of weights w and architecture α on
CE + β·LAT(α), feedback blocks, extraction of the discrete network, meta-kernel merging.

The budget covers data preparation, the latency table, the search (``1 - train_fraction`` of it, whose
first ``warmup_fraction`` updates only w so that operations with weights are trained before α compares
them with parameter-free ones) and a short training of the extracted, merged network with the weights
it inherited (the rest).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from finetune.data import PreparedData, prepare
from finetune.heads import Head, HeadSpec
from finetune.nas.feedback import apply_feedback
from finetune.nas.latency import LatencyTable, device_description, measure_table, time_modules
from finetune.nas.network import DerivedNet, SuperNet, derive
from finetune.nas.options import SearchOptions
from finetune.nas.space import Genotype, SearchSpace
from finetune.zoo import count_parameters
from metafeatures.datasets import Dataset, open_dataset
from metafeatures.errors import ConfigError
from metafeatures.fingerprint import IMAGENET_MEAN, IMAGENET_STD, pick_device

HEAD = HeadSpec(layers=1, dropout=0.0)  # the supernet's classifier: pooling + one linear layer
LAMBDA_STEP = 1.25  # budget mode: λ (from 0.1) grows by this factor after an α step over the budget, else shrinks
ProgressFn = Callable[[float], None]


@dataclass
class SearchResult:
    """The extracted architecture, its merged network (backbone + classifier head) and what was measured."""

    genotype: Genotype
    space: SearchSpace
    table: LatencyTable
    model: nn.Module
    options: SearchOptions
    classes: list[str]
    dataset: dict[str, Any]
    stats: dict[str, Any]
    history: list[dict[str, float]]
    alphas: dict[str, Any]

    @property
    def backbone(self) -> DerivedNet:
        """The merged discrete network (the zoo backbone)."""
        return self.model.backbone  # type: ignore[return-value]


class _Classifier(nn.Module):
    """Backbone + head with the attribute names of finetune.model.FinetuneModel (backbone., head.)."""

    def __init__(self, backbone: nn.Module, head: Head) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self.head(self.backbone(x))


def _to_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 NHWC → ImageNet-normalised float NCHW on ``device`` (as the trainer feeds backbones)."""
    t = torch.from_numpy(x).to(device).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return ((t - mean) / std).contiguous()


def extract(space: SearchSpace, alpha_stem: torch.Tensor, alpha_cells: torch.Tensor,
            table: LatencyTable | None = None, budget_ms: float | None = None) -> Genotype:
    """The discrete architecture: the operation of largest α on every edge (first on ties). With a table
    and a budget, while the prediction exceeds it, switch the edge whose switch to a faster operation costs
    the least α per millisecond saved (deterministic for fixed α)."""
    a_stem = alpha_stem.detach().cpu().tolist()
    a_cells = alpha_cells.detach().cpu().tolist()
    stem = int(np.argmax(a_stem))
    cells = [[int(np.argmax(edge)) for edge in cell] for cell in a_cells]

    def genotype() -> Genotype:
        return Genotype(space.stem_ops[stem], tuple(tuple(space.edge_ops[o] for o in c) for c in cells))

    if table is None or budget_ms is None:
        return genotype()
    while table.predict_ms(genotype()) > budget_ms:
        best: tuple[float, int, int, int] | None = None  # (cost, cell or -1 for the stem, edge, new op)
        slots = [(-1, 0, a_stem, stem, [table.stem_ms(o) for o in space.stem_ops])]
        slots += [(k, e, a_cells[k][e], cells[k][e], [table.edge_ms(k, e, o) for o in space.edge_ops])
                  for k in range(len(cells)) for e in range(len(cells[k]))]
        for k, e, alphas, cur, lat in slots:
            for o in range(len(alphas)):
                if lat[o] < lat[cur]:
                    cost = (alphas[cur] - alphas[o]) / (lat[cur] - lat[o])
                    if best is None or cost < best[0]:
                        best = (cost, k, e, o)
        if best is None:
            break  # the fastest architecture of the space is still over the budget
        _, k, e, o = best
        if k < 0:
            stem = o
        else:
            cells[k][e] = o
    return genotype()


def backbone_flops(backbone: nn.Module, size: tuple[int, int]) -> int:
    """FLOPs of one image through ``backbone`` (FlopCounterMode, 2 per multiply-add), as the zoo counts them."""
    was_training = backbone.training
    backbone.eval()
    counter = FlopCounterMode(display=False)
    param = next(iter(backbone.parameters()))
    with torch.no_grad(), counter:
        backbone(torch.zeros(1, 3, *size, device=param.device))
    backbone.train(was_training)
    return int(counter.get_total_flops())


def _batches(idx: np.ndarray, batch_size: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """Endless shuffled mini-batches of ``idx``."""
    while True:
        order = rng.permutation(idx)
        for i in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            yield np.sort(order[i: i + batch_size])


def search(dataset: Dataset | str | Path, options: SearchOptions, table: LatencyTable | None = None,
           progress: bool = False, on_progress: ProgressFn | None = None) -> SearchResult:
    """Search ``dataset`` under ``options``; ``table`` reuses a latency table measured on this device."""
    start = time.perf_counter()
    before_threads = torch.get_num_threads()
    device = pick_device(options.device)
    if options.threads is not None and device.type == "cpu":
        torch.set_num_threads(options.threads)
    try:
        return _search(dataset, options, table, progress, on_progress, start, device)
    finally:
        torch.set_num_threads(before_threads)


def _search(dataset: Dataset | str | Path, options: SearchOptions, table: LatencyTable | None, progress: bool,
            on_progress: ProgressFn | None, start: float, device: torch.device) -> SearchResult:
    from metafeatures.summary import content_hash

    space = options.space
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    if ds.modality != "image":
        raise ConfigError("dataset", ds.name, "architecture search takes image datasets")
    data = prepare(ds, space.input_size, test_fraction=options.test_fraction, seed=options.seed)
    if table is None:
        table = measure_table(space, device)
    else:
        table.check_matches(space, device_description(device), 1)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    net = SuperNet(space, data.n_classes, copies=options.n_copies).to(device)
    bar = tqdm(total=round(options.budget_s), unit="s", desc="nas search", disable=not progress)
    loop = _search_loop(net, data, table, options, start, rng, device,
                        lambda: _tick(bar, start, options, on_progress))
    search_s = time.perf_counter() - start
    genotype = extract(space, net.alpha_stem, net.alpha_cells, table, options.latency_budget_ms)
    model = _Classifier(derive(net, genotype, merged=True), Head(space.out_channels, data.n_classes, HEAD))
    with torch.no_grad():
        model.head.fc[-1].load_state_dict(net.classifier.state_dict())  # type: ignore[index]
    train_steps = _train_derived(model, data, options, start, rng, device, bar, on_progress)
    bar.close()
    predicted_ms = table.predict_ms(genotype)
    stats = {"steps": loop.steps, "arch_steps": loop.arch_steps, "train_steps": train_steps,
             "search_s": round(search_s, 2), "wall_s": round(time.perf_counter() - start, 2),
             "test_accuracy": _accuracy(model, data, device), "predicted_ms": predicted_ms,
             **_measure(model.backbone, data.size, device), "final_lambda": loop.lam, "device": str(device),
             "budget_met": (None if options.latency_budget_ms is None
                            else bool(predicted_ms <= options.latency_budget_ms)),
             "fastest_ms": table.predict_ms(extract(space, net.alpha_stem, net.alpha_cells, table, 0.0))}
    return SearchResult(genotype=genotype, space=space, table=table, model=model.eval(), options=options,
                        classes=data.classes,
                        dataset={"name": ds.name, "path": str(ds.root), "content_hash": content_hash(ds),
                                 "n_classes": data.n_classes, "n_train": data.n_train,
                                 "n_test": len(data.x_test), "input_size": list(data.size)},
                        stats=stats, history=loop.history,
                        alphas={"stem": net.alpha_stem.detach().cpu().tolist(),
                                "cells": net.alpha_cells.detach().cpu().tolist()})



def _measure(backbone: nn.Module, size: tuple[int, int], device: torch.device) -> dict[str, Any]:
    """Batch-1 latency (ms, :func:`time_modules`), parameters and FLOPs of the merged backbone."""
    backbone.eval()
    measured = time_modules({"net": (backbone, torch.zeros(1, 3, *size))}, device)["net"]
    return {"measured_ms": measured, "params": count_parameters(backbone), "flops": backbone_flops(backbone, size)}

@dataclass
class _Loop:
    """What the alternating updates leave: counts, the final λ and one history row per α step."""

    steps: int = 0
    arch_steps: int = 0
    lam: float = 0.1
    history: list[dict[str, float]] = field(default_factory=list)


def _search_loop(net: SuperNet, data: PreparedData, table: LatencyTable, options: SearchOptions, start: float,
                 rng: np.random.Generator, device: torch.device, tick: Callable[[], None]) -> _Loop:
    """Alternate weight steps (first half of the train split) and α steps (second half) until the search
    share of the budget is spent; the first ``warmup_fraction`` of that time updates only the weights."""
    space, loop = options.space, _Loop()
    perm = rng.permutation(data.n_train)
    w_idx, a_idx = perm[: max(1, data.n_train // 2)], perm[data.n_train // 2:]
    w_opt = torch.optim.Adam(net.weight_parameters(), lr=options.lr)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=options.arch_lr, betas=(0.5, 0.999), weight_decay=1e-3)
    search_end = start + options.budget_s * (1.0 - options.train_fraction)
    warmup_end = time.perf_counter() + (search_end - time.perf_counter()) * options.warmup_fraction
    w_batches, a_batches = _batches(w_idx, options.batch_size, rng), _batches(a_idx, options.batch_size, rng)
    net.train()
    while loop.arch_steps == 0 or time.perf_counter() < search_end:
        losses = _weight_step(net, w_opt, data, next(w_batches), options, device)
        loop.steps += 1
        tick()
        if time.perf_counter() < warmup_end:
            continue
        ce, lat = _arch_step(net, a_opt, data, next(a_batches), table, options, loop.lam, device)
        loop.arch_steps += 1
        predicted = table.predict_ms(extract(space, net.alpha_stem, net.alpha_cells))
        if options.latency_budget_ms is not None:  # λ follows the budget: up while the argmax is over it
            over = predicted > options.latency_budget_ms
            loop.lam = min(1e3, loop.lam * LAMBDA_STEP) if over else max(1e-3, loop.lam / LAMBDA_STEP)
        loop.history.append({"t": time.perf_counter() - start, "w_loss": float(np.mean(losses)), "arch_ce": ce,
                             "expected_ms": lat, "argmax_ms": predicted, "lambda": loop.lam})
    return loop


def _weight_step(net: SuperNet, opt: torch.optim.Optimizer, data: PreparedData, idx: np.ndarray,
                 options: SearchOptions, device: torch.device) -> list[float]:
    """One update of w on a training batch; with feedback blocks each kernel set sees its own slice of the
    batch and the sets are merged afterwards with β_i = tanh(1/L_i) / Σ_j tanh(1/L_j)."""
    opt.zero_grad(set_to_none=True)
    x, y = _to_tensor(data.x_train[idx], device), torch.from_numpy(data.y_train[idx]).to(device)
    parts = options.n_copies if len(idx) >= options.n_copies else 1
    losses = []
    for i, (xs, ys) in enumerate(zip(x.chunk(parts), y.chunk(parts), strict=True)):
        net.set_copy(i)
        loss = F.cross_entropy(net(xs), ys)
        (loss / parts).backward()
        losses.append(float(loss.detach()))
    opt.step()
    net.set_copy(0)
    if parts > 1:
        apply_feedback(net, losses)
    return losses


def _arch_step(net: SuperNet, opt: torch.optim.Optimizer, data: PreparedData, idx: np.ndarray,
               table: LatencyTable, options: SearchOptions, lam: float, device: torch.device) -> tuple[float, float]:
    """One first-order update of α on a held-out batch: CE + β·LAT(α) (β per ms), or with a budget
    λ·LAT(α)/budget with λ adapted to the budget."""
    opt.zero_grad(set_to_none=True)
    x, y = _to_tensor(data.x_train[idx], device), torch.from_numpy(data.y_train[idx]).to(device)
    ce = F.cross_entropy(net(x), y)
    lat = table.expected_ms(net.alpha_stem, net.alpha_cells)
    term = options.beta * lat if options.beta is not None else lam * lat / options.latency_budget_ms  # type: ignore[operator]
    arch = net.arch_parameters()  # gradients for α only: the weights' gradients would be thrown away
    for param, grad in zip(arch, torch.autograd.grad(ce + term, arch), strict=True):
        param.grad = grad
    opt.step()
    return float(ce.detach()), float(lat.detach())


def _train_derived(model: nn.Module, data: PreparedData, options: SearchOptions, start: float,
                   rng: np.random.Generator, device: torch.device, bar: tqdm, on_progress: ProgressFn | None) -> int:
    """Train the extracted network (inherited weights) on the whole train split until the budget ends."""
    opt = torch.optim.Adam(model.parameters(), lr=options.lr)
    batches = _batches(np.arange(data.n_train), options.batch_size, rng)
    model.train()
    steps = 0
    while time.perf_counter() - start < options.budget_s and options.train_fraction > 0:
        idx = next(batches)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(_to_tensor(data.x_train[idx], device)),
                               torch.from_numpy(data.y_train[idx]).to(device))
        loss.backward()
        opt.step()
        steps += 1
        _tick(bar, start, options, on_progress)
    return steps


@torch.inference_mode()
def _accuracy(model: nn.Module, data: PreparedData, device: torch.device) -> float:
    """Top-1 accuracy on the test split."""
    model.eval()
    correct = 0
    for i in range(0, len(data.x_test), 256):
        logits = model(_to_tensor(data.x_test[i: i + 256], device))
        correct += int((logits.argmax(1).cpu().numpy() == data.y_test[i: i + 256]).sum())
    return correct / max(1, len(data.x_test))


def _tick(bar: tqdm, start: float, options: SearchOptions, on_progress: ProgressFn | None) -> None:
    elapsed = time.perf_counter() - start
    bar.n = min(round(options.budget_s), round(elapsed))
    bar.refresh()
    if on_progress is not None:
        on_progress(min(1.0, elapsed / options.budget_s))
