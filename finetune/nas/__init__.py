"""Seed 004: latency-aware differentiable architecture search with meta-kernels, a source of zoo backbones.

Modules: ``ops`` (candidates, meta-kernels), ``space`` (cells, genotype), ``network`` (supernet, discrete
network), ``latency`` (per-op table, LAT(α)), ``feedback`` (feedback blocks), ``options`` and ``search`` (the loop and
extraction), ``entry`` (saved ``nas:<name>`` zoo entries). Import them directly; this package imports
nothing heavy so configuration code can use ``finetune.nas.names``.
"""
