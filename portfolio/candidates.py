"""Candidates: the configurations a portfolio can recommend (rows of the performance matrix), with their cost.

A candidate is any configuration with performance data: a known dataset's BOHB incumbent (``source =
"incumbent"``, ``dataset`` names it), the seed-000 default, a space-filling point of the search space, ...
Each carries its inference cost (parameters, FLOPs, latency of one batch), measured once when the
portfolio is built on the build machine's device, which the cost names: a user's limits are checked
against these numbers, so a latency limit means "on a device like that one".
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from finetune.config import FinetuneConfig

#: the input size and batch of the cost measurement (the fingerprints' resolution; one image at a time)
COST_INPUT_SIZE = (64, 64)
COST_BATCH_SIZE = 1
COST_N_CLASSES = 10
#: candidate sources a portfolio may record
SOURCES: tuple[str, ...] = ("incumbent", "default", "space_filling", "observed", "nas")


class Cost(BaseModel):
    """Inference cost of a configuration's network: what the user's limits are compared with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    params: Annotated[int, Field(ge=0)]
    flops: Annotated[int, Field(ge=0)]
    latency_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    device: Annotated[str, Field(min_length=1, max_length=200)]
    input_size: tuple[int, int] = COST_INPUT_SIZE
    batch_size: Annotated[int, Field(ge=1)] = COST_BATCH_SIZE


class Candidate(BaseModel):
    """A recommendable configuration (a row of the performance matrix): id, configuration, origin, cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=200)]
    configuration: dict[str, Any]
    source: str
    dataset: str | None = None
    cost: Cost | None = None

    def config(self) -> FinetuneConfig:
        """The configuration as a validated FinetuneConfig."""
        return FinetuneConfig.from_dict(self.configuration)


def device_description(device: str = "cpu") -> str:
    """What a latency was measured on: the CUDA device's name, or the CPU model and torch's thread count."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"
    cpu = platform.processor() or platform.machine()
    return f"cpu:{cpu} ({torch.get_num_threads()} threads)"


def measure_cost(config: FinetuneConfig, device: str = "cpu", repeats: int = 10) -> Cost:
    """Parameters, FLOPs and median latency (ms) of one batch through the configuration's untrained network."""
    import torch

    from finetune.model import build_model
    from finetune.zoo import count_flops, count_parameters, measure_latency

    model = build_model(config.backbone, COST_N_CLASSES, pretrained="none", head=config.head_spec(),
                        input_size=COST_INPUT_SIZE).eval().to(torch.device(device))
    latency = measure_latency(model, COST_INPUT_SIZE, batch_size=COST_BATCH_SIZE, repeats=repeats)
    return Cost(params=count_parameters(model), flops=count_flops(config.backbone, COST_INPUT_SIZE, COST_N_CLASSES,
                                                                    config.head_spec()),
                latency_ms=round(latency * 1000.0, 3), device=device_description(device))


def network_key(config: FinetuneConfig) -> str:
    """What the cost depends on: the backbone and the head (not the optimiser, the data or the seed)."""
    return f"{config.backbone}|{config.head_spec().to_dict()}"


def with_costs(candidates: Sequence[Candidate], device: str = "cpu", remeasure: bool = False) -> list[Candidate]:
    """The candidates with their cost; each distinct network is measured once, so equal networks get equal
    costs (candidates that already carry one keep it unless ``remeasure``)."""
    measured: dict[str, Cost] = {}
    out = []
    for c in candidates:
        if c.cost is not None and not remeasure:
            out.append(c)
            continue
        key = network_key(c.config())
        if key not in measured:
            measured[key] = measure_cost(c.config(), device, repeats=30)
        out.append(c.model_copy(update={"cost": measured[key]}))
    return out


def incumbent_candidates(entries: Sequence[Any]) -> list[Candidate]:
    """One candidate per portfolio entry: its dataset's incumbent, with the dataset's name as id."""
    return [Candidate(id=e.dataset, configuration=dict(e.configuration), source="incumbent", dataset=e.dataset)
            for e in entries]


def default_candidate(seed: int = 0) -> Candidate:
    """The seed-000 default: MobileNetV2 with ImageNet weights, full fine-tuning (FinetuneConfig's defaults)."""
    return Candidate(id="seed000_default", configuration=FinetuneConfig(seed=seed).to_dict(), source="default")
