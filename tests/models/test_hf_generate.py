"""generate called Hugging Face style (``model.generate(**tokenizer(texts))``), beams refused, and a clear error for a
model whose weights are not finite (training diverged) instead of a torch traceback or garbage tokens."""

from __future__ import annotations

import pytest
import torch
from byte_models import byte_model, byte_tokenizer

from apt_fast.cli import main


def test_generate_takes_the_tokenizer_output():
    model, tokenizer = byte_model(), byte_tokenizer()
    batch = tokenizer(["hello", "hi"])
    out = model.generate(**batch, max_new_tokens=5, do_sample=False)
    assert torch.equal(out, model.generate(batch["input_ids"], max_length=5, do_sample=False))


def test_generate_honours_attention_mask(monkeypatch):
    """The source padding is attention_mask == 0 (whatever the padded ids are), for the encoder and the
    decoder's memory; without a mask it stays upstream's input_ids == pad."""
    model = byte_model()
    seen = []
    encode, decode = model.encode, model.decode
    monkeypatch.setattr(model, "encode", lambda *a, **k: seen.append(k["src_key_padding_mask"]) or encode(*a, **k))
    monkeypatch.setattr(model, "decode", lambda *a, **k: seen.append(k["memory_key_padding_mask"]) or decode(*a, **k))
    ids = torch.tensor([[10, 11, 12, 13], [20, 21, 99, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    model.generate(input_ids=ids, attention_mask=mask, max_length=2)
    assert len(seen) == 3 and all(torch.equal(kpm, mask == 0) for kpm in seen)
    seen.clear()
    model.generate(ids, max_length=2)
    assert all(torch.equal(kpm, ids == 0) for kpm in seen)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"num_beams": 4}, ValueError, r"generate: num_beams=4 is not supported: APT has no beam search"),
    ({"max_length": 3, "max_new_tokens": 3}, TypeError, r"got both max_length= and max_new_tokens="),
    ({"attention_mask": torch.ones(1, 3)}, ValueError,
     r"attention_mask must have the shape of input_ids \[2, 5\], got \[1, 3\]"),
    ({"token_type_ids": torch.zeros(2, 5)}, TypeError, "unexpected keyword argument 'token_type_ids'"),
])
def test_generate_refuses_what_it_cannot_do(kwargs, error, message):
    model = byte_model()
    with pytest.raises(error, match=message):
        model.generate(torch.randint(3, 259, (2, 5)), **kwargs)
    assert model.generate(torch.randint(3, 259, (2, 5)), num_beams=1, max_length=2).shape == (2, 2)


def test_nan_weights_are_named_before_generating():
    model = byte_model()
    with torch.no_grad():
        model.encoder_layers[0].linear1.weight[0, 0] = float("nan")
        model.decoder_norm.bias.fill_(float("inf"))
    for do_sample in (True, False):  # sampling crashed in torch.multinomial, greedy returned garbage
        with pytest.raises(ValueError, match=r"^generate: the model's weights contain nan or inf in 2 of 69 tensors "
                           r"\(encoder_layers.0.linear1.weight, decoder_norm.bias\); "
                           r"training probably diverged") as error:
            model.generate(torch.randint(3, 259, (1, 4)), max_length=3, do_sample=do_sample)
        assert error.type.__name__ == "NonFiniteWeightsError"


def test_overflowing_weights_are_reported_at_the_first_bad_step():
    model = byte_model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1e16)
    with pytest.raises(ValueError, match=r"^generate: the logits of step 1 contain nan or inf although every weight is "
                       r"finite: the weights are too large for torch.float32 arithmetic \(largest \|weight\|"):
        model.generate(torch.randint(3, 259, (1, 4)), max_length=3)


def test_generate_command_prints_one_line(tmp_path, capsys):
    model = byte_model()
    with torch.no_grad():
        model.token_embedding.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path, tokenizer=byte_tokenizer())
    capsys.readouterr()
    assert main(["generate", "--model-path", str(tmp_path), "--prompt", "hi", "--max-length", "3"]) == 2
    assert capsys.readouterr().err == ("apt-fast generate: error: generate: the model's weights contain nan or inf "
                                       "in 1 of 69 tensors (token_embedding.weight); training probably diverged; "
                                       "load an earlier checkpoint\n")
