"""Pruned APT models export to GGUF: a masked model writes its weights dense (with the zeros, no masks), a
head-pruned one records its head width (apt.attention.key_length), and both load back with the same outputs."""

from __future__ import annotations

import warnings

import pytest
import torch

import apt_fast
from apt_fast.pruning import MagnitudePruneConfig, StructuredPruneConfig, prune

pytest.importorskip("gguf")


@pytest.mark.parametrize("config", [MagnitudePruneConfig(0.5, embedding_ratio=0.2),
                                    StructuredPruneConfig(0.5, target="heads"),
                                    StructuredPruneConfig(0.25, target="ffn")], ids=["masked", "heads", "ffn"])
def test_gguf_round_trip(config, make_apt, tmp_path):
    from apt_fast.export import export_gguf

    model = make_apt()
    prune(model, config)
    path = export_gguf(model, tmp_path / "pruned.gguf", dtype="f32", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded, _ = apt_fast.load(path)
    assert (loaded.config.num_heads, loaded.config.head_dim, loaded.config.d_ff) == (
        model.config.num_heads, model.config.head_dim, model.config.d_ff)
    ids = torch.randint(3, 40, (2, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(ids, ids), model(ids, ids))
