"""The exact k-lowest selection behind every threshold: exact counts, ties in order, pruned-first entries, many
tensors at once, several chunks, and more than 2^24 scores (where torch.quantile refuses)."""

from __future__ import annotations

import pytest
import torch

from apt_fast.pruning import selection
from apt_fast.pruning.selection import count_to_prune, lowest, lowest_per_row


def _reference(scores, k):
    """The k lowest of the concatenation by a stable sort (ties: earlier position first)."""
    flat = torch.cat([s.reshape(-1) for s in scores])
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[flat.argsort(stable=True)[:k]] = True
    return list(chosen.split([s.numel() for s in scores]))


@pytest.mark.parametrize("k", [0, 1, 17, 500, 1023, 1024])
def test_matches_a_stable_sort_across_tensors(k):
    generator = torch.Generator().manual_seed(0)
    scores = [torch.rand(7, 13, generator=generator), torch.rand(1, generator=generator),
              torch.rand(24, 39, generator=generator)]
    scores[2][0, :5] = scores[0][3, 4]  # ties across tensors
    chosen = lowest(scores, k)
    for got, want, s in zip(chosen, _reference(scores, k), scores):
        assert got.shape == s.shape and got.dtype == torch.bool
        assert torch.equal(got.reshape(-1), want)
    assert sum(int(c.sum()) for c in chosen) == k


def test_ties_are_taken_in_order_and_negative_scores_go_first():
    scores = [torch.tensor([0.5, 0.5, -1.0, 0.5, 0.0, 0.5])]
    assert lowest(scores, 3)[0].tolist() == [True, False, True, False, True, False]
    assert lowest([torch.zeros(10)], 4)[0].tolist() == [True] * 4 + [False] * 6


def test_many_chunks(monkeypatch):
    monkeypatch.setattr(selection, "CHUNK", 64)
    generator = torch.Generator().manual_seed(1)
    scores = [torch.randint(0, 50, (31, 17), generator=generator).float(), torch.rand(300, generator=generator)]
    for k in (1, 250, 527, 800):
        for got, want in zip(lowest(scores, k), _reference(scores, k)):
            assert torch.equal(got.reshape(-1), want)


def test_more_than_2_to_the_24_scores():
    n = 2 ** 24 + 3
    with pytest.raises(RuntimeError, match="too large"):
        torch.quantile(torch.zeros(n), 0.5)
    scores = torch.rand(n, generator=torch.Generator().manual_seed(2))
    scores[-2:] = 0.0  # ties at the bottom
    k = n // 2 + 1
    chosen = lowest([scores], k)[0]
    assert int(chosen.sum()) == k
    assert bool(chosen[-2:].all())
    threshold = scores[chosen].max()
    assert bool((scores[~chosen] >= threshold).all())


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match=r"scores must not contain nan, got nan in score tensor 1 of shape \(2,\)"):
        lowest([torch.zeros(3), torch.tensor([0.0, float("nan")])], 1)


def test_per_row():
    scores = torch.tensor([[3.0, 1.0, 2.0, 1.0], [0.0, -1.0, 5.0, 4.0]])
    assert lowest_per_row(scores, 2).tolist() == [[False, True, False, True], [True, True, False, False]]


@pytest.mark.parametrize("ratio, total, count", [(0.5, 5, 3), (0.3, 10, 3), (0.25, 2, 1), (0.0, 9, 0), (0.99, 4, 4)])
def test_count_to_prune_rounds_halves_up(ratio, total, count):
    assert count_to_prune(ratio, total) == count
