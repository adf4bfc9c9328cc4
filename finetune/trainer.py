"""``finetune(config, dataset, budget)``: train under a wall-clock and/or epoch budget with anytime evaluation.

As in the AutoDL challenge the clock starts when the call starts (data preparation included) and
evaluation time counts against the budget. The test split is predicted first right after the first
training step, then at geometrically spaced times, and once more at the end; each prediction adds a
point (t, NAUC, accuracy) to the learning curve, whose ALC is the score.
"""

from __future__ import annotations

import datetime as _dt
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from finetune.config import FinetuneConfig
from finetune.data import PreparedData, prepare
from finetune.heads import VideoSpec
from finetune.metrics import DEFAULT_T0, DEFAULT_TIME_BUDGET, alc, nauc
from finetune.result import CurvePoint, FinetuneResult
from finetune.video_data import VideoData
from metafeatures.datasets import Dataset, open_dataset
from metafeatures.errors import ConfigError
from metafeatures.fingerprint import IMAGENET_MEAN, IMAGENET_STD, pick_device

ProgressFn = Callable[[float, CurvePoint | None], None]
StopFn = Callable[[], bool]


@dataclass
class TrainOptions:
    """How a run is executed (not what is trained): budgets, scoring clock, device, callbacks."""

    budget_s: float | None = None
    epochs: float | None = None
    time_budget: float = DEFAULT_TIME_BUDGET
    t0: float = DEFAULT_T0
    test_fraction: float = 0.2
    eval_ratio: float = 2.0
    device: str | None = None
    save_checkpoint: bool = True
    use_cache: bool = True
    show_progress: bool = False
    on_progress: ProgressFn | None = None
    should_stop: StopFn | None = None

    def __post_init__(self) -> None:
        if self.budget_s is None and self.epochs is None:
            raise ConfigError("budget", None, "give a time budget in seconds and/or an epoch budget")
        if self.budget_s is not None and not self.budget_s > 0:
            raise ConfigError("budget_s", self.budget_s, "must be positive")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError("epochs", self.epochs, "must be positive")
        if self.eval_ratio <= 1.0:
            raise ConfigError("eval_ratio", self.eval_ratio, "must be greater than 1")


@dataclass
class _Run:
    """Mutable state of one training run."""

    start: float
    curve: list[CurvePoint] = field(default_factory=list)
    steps: int = 0
    seen: int = 0
    train_seconds: float = 0.0
    last_eval_cost: float = 0.0
    status: Literal["completed", "cancelled", "diverged"] = "completed"
    reason: str = ""

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


class _Batches:
    """Turns uint8 NHWC numpy batches into normalised float NCHW tensors on the device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255.0

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) images → (N, 3, H, W); (N, T, H, W, 3) clips → (N, T, 3, H, W)."""
        t = torch.from_numpy(x).to(self.device, non_blocking=True)
        t = (t.permute(0, 3, 1, 2) if t.ndim == 4 else t.permute(0, 1, 4, 2, 3)).float()
        return ((t - self.mean) / self.std).contiguous()


def make_optimizer(config: FinetuneConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """Adam, or SGD with Nesterov momentum 0.9 and weight decay 1e-6 (seed 001 §6.2)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                           weight_decay=config.weight_decay)


@torch.inference_mode()
def predict_scores(model: nn.Module, x: np.ndarray, to_tensor: _Batches, batch_size: int, amp: bool) -> np.ndarray:
    """Softmax scores (n, k) of the model on uint8 images, in eval mode."""
    was_training = model.training
    model.eval()
    outs = []
    for i in range(0, len(x), batch_size):
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
            logits = model(to_tensor(x[i: i + batch_size]))
        outs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(outs)


def _evaluate(model: nn.Module, data: PreparedData, run: _Run, to_tensor: _Batches, amp: bool,
              eval_batch: int) -> CurvePoint:
    """Predict the test split; the point's time is taken after the prediction, as the challenge clock would."""
    started = time.perf_counter()
    scores = predict_scores(model, data.x_test, to_tensor, eval_batch, amp)
    accuracy = float((scores.argmax(1) == data.y_test).mean())
    point = CurvePoint(t=run.elapsed(), nauc=_safe_nauc(data.y_test, scores, data.n_classes), accuracy=accuracy,
                       step=run.steps, epoch=run.seen / max(1, data.n_train))
    run.last_eval_cost = time.perf_counter() - started
    run.curve.append(point)
    return point


def _safe_nauc(y: np.ndarray, scores: np.ndarray, n_classes: int) -> float:
    """NAUC of integer labels; a test split with one class (all columns one-sided) scores 0."""
    try:
        return nauc(y, scores[:, :n_classes])
    except ValueError:
        return 0.0


def finetune(config: FinetuneConfig, dataset: Dataset | str | Path, options: TrainOptions,
             out_dir: Path | None = None) -> FinetuneResult:
    """Fine-tune ``config`` on ``dataset`` under ``options``' budget; write metrics.json (+ checkpoint) to out_dir."""
    from finetune.checkpoint import save_checkpoint
    from finetune.model import build_model

    run = _Run(start=time.perf_counter())
    device = pick_device(options.device)
    amp = device.type == "cuda"
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    data = prepare(ds, config.input_size, config.max_edge, options.test_fraction, config.seed,
                   use_cache=options.use_cache, progress=options.show_progress)
    video = None
    if isinstance(data, VideoData) and data.window is not None:
        video = VideoSpec(config.video_head_or_default, data.window.frames, data.window.kernel)
    torch.manual_seed(config.seed)
    model = build_model(config.backbone, data.n_classes, pretrained=config.pretrained, head=config.head_spec(),
                        strategy=config.strategy, last_k=config.last_k, input_size=data.size,
                        seed=config.seed, video=video).to(device)
    if amp:
        torch.cuda.reset_peak_memory_stats(device)
    setup_time = run.elapsed()
    optimizer = make_optimizer(config, list(model.trainable_parameters()))
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    to_tensor = _Batches(device)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(config.seed)
    n_train = data.n_train
    max_seen = math.inf if options.epochs is None else options.epochs * n_train
    next_eval = 0.0
    model.train()
    bar = tqdm(total=options.budget_s or options.epochs, unit="s" if options.budget_s else "ep",
               desc=f"finetune {config.backbone}", disable=not options.show_progress)

    def out_of_budget() -> bool:
        if run.seen >= max_seen:
            return True
        return options.budget_s is not None and run.elapsed() + 1.1 * run.last_eval_cost >= options.budget_s

    while run.status == "completed" and not (run.steps and out_of_budget()):
        order = rng.permutation(n_train)
        for i in range(0, n_train, config.batch_size):
            if options.should_stop is not None and options.should_stop():
                run.status, run.reason = "cancelled", "stopped by request"
                break
            if run.steps and out_of_budget():
                break
            idx = np.sort(order[i: i + config.batch_size])
            step_start = time.perf_counter()
            loss = _train_step(model, optimizer, scaler, loss_fn, to_tensor(data.train_batch(idx, rng)),
                               torch.from_numpy(data.y_train[idx]).to(device), amp)
            run.train_seconds += time.perf_counter() - step_start
            run.steps += 1
            run.seen += len(idx)
            if not math.isfinite(loss):
                run.status, run.reason = "diverged", f"training loss became {loss} at step {run.steps}"
                break
            if run.elapsed() >= next_eval:
                point = _evaluate(model, data, run, to_tensor, amp, max(64, config.batch_size))
                next_eval = run.elapsed() * options.eval_ratio
                if options.on_progress is not None:
                    options.on_progress(_fraction(run, options, max_seen), point)
            bar.n = round(run.elapsed() if options.budget_s else run.seen / n_train, 2)
            bar.refresh()
    bar.close()
    if run.status == "completed" and (not run.curve or run.curve[-1].step != run.steps):
        _evaluate(model, data, run, to_tensor, amp, max(64, config.batch_size))
    if options.on_progress is not None:
        options.on_progress(1.0, run.curve[-1] if run.curve else None)
    result = _result(config, ds, data, run, options, device, amp, setup_time)
    if out_dir is not None:
        if options.save_checkpoint and run.status != "diverged":
            ckpt = save_checkpoint(out_dir / "model.pt", model, config.to_dict(), data.classes,
                                   extra={"alc": result.alc, "dataset": ds.name})
            result.checkpoint = str(ckpt)
        result.save(out_dir)
    return result


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool) -> float:
    """One optimisation step (float16 autocast and loss scaling on CUDA); returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def _fraction(run: _Run, options: TrainOptions, max_seen: float) -> float:
    """Share of the budget used so far (the larger of time and epochs)."""
    parts = []
    if options.budget_s is not None:
        parts.append(run.elapsed() / options.budget_s)
    if math.isfinite(max_seen):
        parts.append(run.seen / max_seen)
    return float(min(1.0, max(parts)))


def _peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _result(config: FinetuneConfig, ds: Dataset, data: PreparedData, run: _Run, options: TrainOptions,
            device: torch.device, amp: bool, setup_time: float) -> FinetuneResult:
    """Assemble the result from the run's state."""
    from metarec import __version__

    curve = run.curve
    last = curve[-1] if curve else CurvePoint(t=run.elapsed(), nauc=0.0, accuracy=0.0, step=0, epoch=0.0)
    return FinetuneResult(
        status=run.status, reason=run.reason, dataset=ds.name, config=config.to_dict(), classes=data.classes,
        input_size=data.size, n_train=data.n_train, n_test=len(data.x_test), split=data.split_source,
        learning_curve=curve, alc=alc([p.t for p in curve], [p.nauc for p in curve], options.time_budget, options.t0),
        final_nauc=last.nauc, final_accuracy=last.accuracy, return_time=curve[0].t if curve else run.elapsed(),
        time_budget=options.time_budget, t0=options.t0, budget_s=options.budget_s, budget_epochs=options.epochs,
        wall_time=run.elapsed(), setup_time=setup_time, steps=run.steps, epochs=run.seen / max(1, data.n_train),
        train_images_per_s=run.seen / run.train_seconds if run.train_seconds else 0.0, device=str(device), amp=amp,
        peak_memory_mb=_peak_memory_mb(device),
        provenance={"metarec_version": __version__, "torch": torch.__version__,
                    "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
    )
