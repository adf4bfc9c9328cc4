"""Seed 004's architecture search: meta-kernel additivity, feedback weights, latency term, extraction, entries."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from finetune.config import FinetuneConfig
from finetune.nas.feedback import apply_feedback, feedback_weights
from finetune.nas.latency import LatencyTable, _edge_shapes, _key
from finetune.nas.network import DerivedNet, SuperNet, derive
from finetune.nas.ops import MetaKernelConv, pad_kernel
from finetune.nas.search import SearchOptions, extract
from finetune.nas.space import Genotype, SearchSpace
from finetune.zoo import get_entry
from metafeatures.errors import ArtifactError, ConfigError

SMALL = SearchSpace(input_size=16, channels=4, cells=("normal", "reduce"))
# synthetic milliseconds per operation: pooling and skip cheap, convolutions dear, the meta-kernel dearest
OP_MS = {"skip": 0.01, "max_pool_3x3": 0.05, "avg_pool_3x3": 0.04, "sep_conv_3x3": 0.3, "dil_conv_3x3": 0.35,
         "meta_conv_7x7": 0.5}


def synthetic_table(space: SearchSpace = SMALL) -> LatencyTable:
    """A latency table with known entries (no timing), for the tests of LAT(α) and extraction."""
    entries = {f"stem:sep_dw_11x11|{space.input_size}px": 0.2, f"stem:conv_3x3|{space.input_size}px": 0.1}
    for shapes in _edge_shapes(space):
        for shape in shapes:
            for op in space.edge_ops:
                entries[_key(op, shape)] = OP_MS[op] * (2 if shape[2] == 2 else 1)
    return LatencyTable(space=space, device="test device", batch_size=1, entries=entries, base_ms=1.0)


def test_meta_kernel_additivity_sum_of_convs_is_conv_of_summed_padded_kernels():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 13, 11)
    kernels = [torch.randn(6, 1, k, k) for k in (3, 5, 7)]
    for stride in (1, 2):
        separate = sum(F.conv2d(x, k, stride=stride, padding=k.shape[-1] // 2, groups=6) for k in kernels)
        summed = sum(pad_kernel(k, 7) for k in kernels)
        merged = F.conv2d(x, summed, stride=stride, padding=3, groups=6)
        assert torch.allclose(separate, merged, atol=1e-5)
        conv = MetaKernelConv(6, 8, stride).eval()
        assert torch.allclose(conv(x), conv.merged().eval()(x), atol=1e-5)


def test_merged_network_gives_the_unmerged_outputs():
    torch.manual_seed(1)
    genotype = Genotype.uniform(SMALL, "meta_conv_7x7", "sep_dw_11x11")
    net = SuperNet(SMALL, 3)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        net.train()(torch.randn(8, 3, 16, 16))
    unmerged, merged = derive(net.eval(), genotype, merged=False), derive(net, genotype, merged=True)
    assert any(isinstance(m, MetaKernelConv) for m in unmerged.modules())
    assert not any(isinstance(m, MetaKernelConv) for m in merged.modules())
    x = torch.randn(4, 3, 16, 16)
    assert torch.allclose(unmerged(x), merged(x), atol=1e-5)
    assert sum(p.numel() for p in merged.parameters()) < sum(p.numel() for p in unmerged.parameters())


def test_feedback_weights_follow_the_seed_formula_and_sum_to_one():
    losses = [0.4, 1.3, 2.5]
    beta = feedback_weights(losses)
    t = [math.tanh(1 / v) for v in losses]
    assert beta == pytest.approx([v / sum(t) for v in t])
    assert sum(beta) == pytest.approx(1.0)
    assert beta[0] > beta[1] > beta[2]  # the lower loss weighs more
    assert feedback_weights([0.0, 1.0])[0] > 0.5
    for bad in ([], [-1.0], [float("nan")]):
        with pytest.raises(ConfigError):
            feedback_weights(bad)


def test_feedback_merges_parallel_kernel_sets():
    torch.manual_seed(2)
    net = SuperNet(SMALL, 3, copies=2)
    conv = net.meta_convs()[0]
    with torch.no_grad():
        conv.kernels[0][1].add_(1.0)  # the two sets differ
    before = conv.kernels[0].detach().clone()
    beta = apply_feedback(net, [0.5, 2.0])
    expected = beta[0] * before[0] + beta[1] * before[1]
    assert torch.allclose(conv.kernels[0][0], expected) and torch.allclose(conv.kernels[0][1], expected)


def test_latency_term_gradient_lowers_the_expected_latency():
    table = synthetic_table()
    torch.manual_seed(3)
    net = SuperNet(SMALL, 3)
    opt = torch.optim.SGD(net.arch_parameters(), lr=1.0)
    first = table.expected_ms(net.alpha_stem, net.alpha_cells).item()
    for _ in range(5):
        opt.zero_grad()
        table.expected_ms(net.alpha_stem, net.alpha_cells).backward()
        opt.step()
    after = table.expected_ms(net.alpha_stem, net.alpha_cells).item()
    assert after < first - 0.1
    # the expectation of a one-hot α is the prediction of that architecture
    genotype = Genotype.uniform(SMALL, "sep_conv_3x3", "conv_3x3")
    stem = torch.full((2,), -1e4)
    stem[1] = 0
    cells = torch.full((2, 3, len(SMALL.edge_ops)), -1e4)
    cells[..., SMALL.edge_ops.index("sep_conv_3x3")] = 0
    assert float(table.expected_ms(stem, cells)) == pytest.approx(table.predict_ms(genotype), rel=1e-5)


def test_extraction_is_deterministic_and_meets_a_budget():
    table = synthetic_table()
    torch.manual_seed(4)
    a_stem, a_cells = torch.randn(2), torch.randn(2, 3, len(SMALL.edge_ops))
    a_cells[..., SMALL.edge_ops.index("meta_conv_7x7")] += 3.0  # the argmax is the dearest everywhere
    first = extract(SMALL, a_stem, a_cells)
    assert first == extract(SMALL, a_stem.clone(), a_cells.clone())
    assert set(op for cell in first.cells for op in cell) == {"meta_conv_7x7"}
    loose = extract(SMALL, a_stem, a_cells, table, budget_ms=100.0)
    assert loose == first
    tight = extract(SMALL, a_stem, a_cells, table, budget_ms=2.5)
    assert tight == extract(SMALL, a_stem, a_cells, table, budget_ms=2.5)
    assert table.predict_ms(tight) <= 2.5 < table.predict_ms(first)
    ties = extract(SMALL, torch.zeros(2), torch.zeros(2, 3, len(SMALL.edge_ops)))
    assert ties == Genotype.uniform(SMALL, SMALL.edge_ops[0], SMALL.stem_ops[0])


def test_latency_table_round_trip_and_mismatch_refused(tmp_path):
    table = synthetic_table()
    path = table.save(tmp_path / "t.json")
    again = LatencyTable.load(path)
    assert again.entries == table.entries and again.base_ms == table.base_ms
    again.check_matches(SMALL, "test device", 1)
    with pytest.raises(ArtifactError, match="device"):
        again.check_matches(SMALL, "another device", 1)
    with pytest.raises(ArtifactError, match="search space"):
        again.check_matches(SearchSpace(), "test device", 1)
    path.write_text(path.read_text().replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(ArtifactError, match="format version 99"):
        LatencyTable.load(path)


def test_search_options_refuse_bad_arguments():
    with pytest.raises(ConfigError, match="not both"):
        SearchOptions(budget_s=5, beta=0.1, latency_budget_ms=3)
    with pytest.raises(ConfigError, match="latency weight"):
        SearchOptions(budget_s=5)
    for bad in ({"budget_s": -1, "beta": 0.1}, {"budget_s": 5, "latency_budget_ms": -2},
                {"budget_s": 5, "beta": float("inf")}, {"budget_s": 5, "beta": 1, "copies": 0}):
        with pytest.raises(ConfigError):
            SearchOptions(**bad)
    assert SearchOptions(budget_s=5, beta=0.0).n_copies == 2
    assert SearchOptions(budget_s=5, beta=0.0, feedback=False).n_copies == 1  # the feedback switch
    with pytest.raises(ConfigError):
        SearchSpace(channels=1000)
    with pytest.raises(ConfigError):
        Genotype.uniform(SMALL, "skip").validate(SearchSpace())


def test_searched_backbone_names_in_config_and_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("METAREC_NAS_DIR", str(tmp_path))
    assert FinetuneConfig(backbone="nas:my-net").backbone == "nas:my-net"
    for bad in ("nas:", "nas:../x", "nas:UPPER", "nas:a/b"):
        with pytest.raises(ConfigError, match="backbone"):
            FinetuneConfig(backbone=bad)
    with pytest.raises(ConfigError, match="no searched entry"):
        get_entry("nas:missing")


def test_derived_net_blocks_match_the_zoo_names():
    net = DerivedNet(SMALL, Genotype.uniform(SMALL, "skip"))
    assert tuple(n for n, _ in net.named_children()) == DerivedNet.block_names_of(SMALL)
    assert net(torch.zeros(1, 3, 16, 16)).shape[1] == SMALL.out_channels
