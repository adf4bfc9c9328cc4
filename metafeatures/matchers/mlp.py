"""MLP vote matcher: a per-fingerprint Swish MLP classifier whose per-sample answers vote for the batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from metafeatures.matchers._base import BaseMatcher, check_float_param, check_int_param, seed_from

#: torch intra-op threads used while a matcher trains or scores; None leaves torch's global setting alone.
#: These small-batch MLPs run fastest single-threaded (2 threads measured 6-30x slower on a 2-vCPU VM), and
#: a fixed count keeps results bit-identical whatever thread count the calling process uses.
TORCH_THREADS: int | None = 1


@contextmanager
def torch_threads(n: int | None = None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (default :data:`TORCH_THREADS`), then restore it."""
    n = TORCH_THREADS if n is None else n
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _adam(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam, fused into one kernel where this torch supports it on CPU (several times faster)."""
    param_list = list(params)  # materialised: the fallback below needs to iterate them again
    try:
        return torch.optim.Adam(param_list, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - older torch
        return torch.optim.Adam(param_list, lr=lr)


def build_mlp(n_in: int, hidden: int, n_out: int, dropout: float) -> nn.Sequential:
    """Two hidden layers of width ``hidden`` with Swish (SiLU) and dropout, then a linear output layer."""
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.SiLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.SiLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_out),
    )


def train_mlp(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    hidden: int,
    dropout: float,
    lr: float,
    batch_size: int,
    max_epochs: int,
    seed: int,
) -> nn.Sequential:
    """Train :func:`build_mlp` with Adam and cross-entropy; deterministic on CPU for a given ``seed``.

    The global torch RNG is forked, so seeding here does not disturb the caller's random stream.
    """
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    n = Xt.shape[0]
    with torch_threads(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_mlp(Xt.shape[1], hidden, n_classes, dropout)
        optimizer = _adam(model.parameters(), lr)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for _ in range(max_epochs):
            perm = torch.randperm(n)
            for start in range(0, n, batch_size):
                idx = perm[start : start + batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xt[idx]), yt[idx])
                loss.backward()
                optimizer.step()
    model.eval()
    return model


def mlp_state_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's ``state_dict`` as numpy arrays under ``net.<key>`` names."""
    return {f"net.{k}": v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def mlp_from_arrays(
    arrays: dict[str, np.ndarray], n_in: int, hidden: int, n_out: int, dropout: float
) -> nn.Sequential:
    """Rebuild an eval-mode :func:`build_mlp` from :func:`mlp_state_arrays` output (RuntimeError if bad)."""
    model = build_mlp(n_in, hidden, n_out, dropout)
    keys = list(model.state_dict())
    state = {k: torch.from_numpy(np.array(arrays[f"net.{k}"], dtype=np.float32)) for k in keys}
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def check_mlp_params(est: Any) -> None:
    """Validate the hyper-parameters shared by the MLP-based matchers."""
    check_int_param("hidden", est.hidden, 1)
    check_float_param("lr", est.lr, 0.0, 1.0, low_open=True)
    check_float_param("dropout", est.dropout, 0.0, 0.95)
    check_int_param("batch_size", est.batch_size, 1)
    check_int_param("max_epochs", est.max_epochs, 1)


class MLPVoteMatcher(BaseMatcher):
    """Match a batch by majority vote of a per-fingerprint MLP classifier over the batch's samples.

    The MLP has two hidden layers of width ``hidden`` with Swish (SiLU) activations and dropout, and is
    trained with Adam on cross-entropy (seeded by ``random_state``, deterministic on CPU). Each sample of
    a batch votes for its arg-max dataset; scores are the vote shares. Datasets with equal vote share
    (including those with no votes) are ordered by the batch's mean softmax probability, then by name.
    """

    _fitted_attrs: ClassVar[tuple[str, ...]] = ("model_",)

    def __init__(
        self,
        hidden: int = 256,
        lr: float = 1e-3,
        dropout: float = 0.2,
        batch_size: int = 64,
        max_epochs: int = 30,
        standardize: bool = True,
        random_state: Any = 0,
    ) -> None:
        self.hidden = hidden
        self.lr = lr
        self.dropout = dropout
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.standardize = standardize
        self.random_state = random_state

    def _check_params(self) -> None:
        """Validate the MLP hyper-parameters."""
        super()._check_params()
        check_mlp_params(self)

    def _fit(self, X: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        """Train the per-sample MLP classifier."""
        self.model_ = train_mlp(
            X,
            y,
            n_classes,
            hidden=self.hidden,
            dropout=self.dropout,
            lr=self.lr,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            seed=seed_from(self.random_state),
        )

    def _batch_scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vote shares of the per-sample arg-max, with the mean softmax probability as tie-break."""
        with torch_threads(), torch.inference_mode():
            logits = self.model_(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)))
            probs = torch.softmax(logits.double(), dim=1).numpy()
        n_classes = len(self.classes_)
        votes = np.bincount(probs.argmax(axis=1), minlength=n_classes).astype(np.float64)
        return votes / votes.sum(), probs.mean(axis=0)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state: the network weights."""
        meta, arrays = super()._get_state()
        arrays.update(mlp_state_arrays(self.model_))
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore the network from :meth:`_get_state` arrays."""
        super()._set_state(meta, arrays)
        self.model_ = mlp_from_arrays(
            arrays, self.n_features_in_, self.hidden, len(self.classes_), self.dropout
        )
