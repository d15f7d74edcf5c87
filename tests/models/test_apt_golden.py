"""Parity with golden vectors produced by the upstream APT model (tests/data/golden/apt/README.md)."""

from __future__ import annotations

import json

import pytest
import torch
from golden import (
    CASES,
    EVAL_LOGITS,
    GOLDEN_DIR,
    TRAIN_LOSS,
    assert_finite,
    assert_within,
    load_case,
    max_errors,
    reference_results,
    upstream_results,
)

from apt_fast.models.apt.tokenization_char import ChineseCharTokenizer


def _check_fidelity(case, keys):
    """Upstream's float32 values are our model's function, and our float32 run is as accurate as theirs.

    Both are measured against OUR model in float64 on the same weights (golden.py: the allowance and how K was
    chosen). Fidelity: upstream's float32 error within K x this machine's own float32 error of the same
    computation (+ 1e-5 of the value's max + the float32 roundoff floor); it fails when our model computes
    another function. Comparing our float32 with upstream's float32 within a sum of their errors would pass
    by the triangle inequality whatever the model computed. Accuracy: our float32 error within K x upstream's
    (same terms); it fails when our float32 computation loses precision that upstream's does not.
    """
    exact = reference_results(case, torch.float64)
    ours = reference_results(case, torch.float32)
    upstream = upstream_results(case)
    assert set(keys) <= set(upstream) and set(keys) <= set(ours)
    assert_finite(f"{case}: our float32 run", {k: ours[k] for k in keys})
    upstream_error, own_error = max_errors(upstream, exact, keys), max_errors(ours, exact, keys)
    assert_within(f"{case}: upstream's float32 vs our float64 (fidelity)", upstream_error, own_error, exact)
    assert_within(f"{case}: our float32 vs our float64 (accuracy)", own_error, upstream_error, exact)


@pytest.mark.parametrize("case", list(CASES))
def test_eval_logits(case):
    _check_fidelity(case, [EVAL_LOGITS])


@pytest.mark.parametrize("case", list(CASES))
def test_greedy_generate(case):
    data, model, inputs = load_case(case)
    generated = model.generate(inputs["src_tokens"], max_length=6, do_sample=False)
    assert torch.equal(generated, data["expected.greedy_generate"])


@pytest.mark.parametrize("case", list(CASES))
def test_train_loss_and_gradients(case):
    """The loss and every parameter gradient (a few, k_proj.bias, sr_conv*, tau, are sums of cancelling
    terms: golden.py says how the allowance covers them)."""
    grads = sorted(k for k in upstream_results(case) if k.startswith("grad."))
    assert grads == sorted(k for k in reference_results(case, torch.float32) if k.startswith("grad.")), \
        "the same parameters get gradients (sr_layernorm never does)"
    _check_fidelity(case, [TRAIN_LOSS, *grads])


def test_char_tokenizer_matches_upstream():
    expected = json.loads((GOLDEN_DIR / "char_tokenizer" / "expected.json").read_text())
    vocab = json.loads((GOLDEN_DIR / "char_tokenizer" / "vocab.json").read_text(encoding="utf-8"))
    built = ChineseCharTokenizer.fixed_range()
    loaded = ChineseCharTokenizer.from_pretrained(GOLDEN_DIR / "char_tokenizer")
    assert list(built.encoder.items()) == list(vocab.items())
    for tokenizer in (built, loaded):
        assert (tokenizer.vocab_size, tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (
            expected["vocab_size"], expected["pad_token_id"], expected["bos_token_id"], expected["eos_token_id"]
        )
        for text, ids in expected["encode"].items():
            assert tokenizer.encode(text) == ids, text
            assert tokenizer.decode(ids) == expected["decode"][text], text


def test_char_tokenizer_vocab_file_is_byte_identical(tmp_path):
    ChineseCharTokenizer.fixed_range().save_pretrained(tmp_path)
    assert (tmp_path / "vocab.json").read_bytes() == (GOLDEN_DIR / "char_tokenizer" / "vocab.json").read_bytes()
