"""APTModel.forward called Hugging Face style: attention masks are honoured, labels give the loss, and a keyword
the model cannot honour is a TypeError (upstream's names and aliases keep working)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from byte_models import byte_model


def _padded_batch():
    """Two sources of lengths 6 and 4, right-padded with PAD (0), their attention mask, and decoder tokens."""
    torch.manual_seed(5)
    src = torch.randint(3, 259, (2, 6))
    src[1, 4:] = 0
    return src, (src != 0).long(), torch.randint(3, 259, (2, 5))


def test_attention_mask_pads_like_a_shorter_input():
    """With plain attention (padding masked hard) a padded row's logits equal the unpadded row's, to within
    float32 roundoff; ignoring the mask (as before) moved them far."""
    model = byte_model(use_autopoietic=False)
    src, mask, tgt = _padded_batch()
    with torch.no_grad():
        alone = model(input_ids=src[1:, :4], decoder_input_ids=tgt[1:])
        padded = model(input_ids=src, attention_mask=mask, decoder_input_ids=tgt)[1:]
        unmasked = model(input_ids=src, decoder_input_ids=tgt)[1:]
    roundoff = 1e-5 * alone.abs().max().item()
    assert (padded - alone).abs().max().item() <= roundoff
    assert (unmasked - alone).abs().max().item() > 100 * roundoff


def test_attention_masks_are_the_upstream_padding_masks():
    """APT's own attention keeps a little weight on padding by design (APT_SPEC.md §2.4), so the reference is
    upstream's padding-mask computation: attention_mask == 0 is src_key_padding_mask (and the memory's),
    decoder_attention_mask == 0 is tgt_key_padding_mask, bit for bit."""
    model = byte_model()
    src, mask, tgt = _padded_batch()
    tgt_mask = torch.ones_like(tgt)
    tgt_mask[0, 3:] = 0
    with torch.no_grad():
        hf = model(input_ids=src, attention_mask=mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
        upstream = model(src, tgt, src_key_padding_mask=mask == 0, tgt_key_padding_mask=tgt_mask == 0)
        encoder_only = model(input_ids=src, attention_mask=mask, decoder_input_ids=tgt)
    assert torch.equal(hf, upstream)
    assert torch.equal(encoder_only, model(src, tgt, src_key_padding_mask=mask == 0))
    assert not torch.allclose(hf, encoder_only) and not torch.allclose(encoder_only, model(src, tgt))


def test_labels_give_the_seq2seq_loss():
    """Decoder inputs are the labels shifted right after BOS (-100 read as PAD); the loss is the mean
    cross-entropy over the labels that are not -100, as in transformers' seq2seq models."""
    model = byte_model()
    src, mask, _ = _padded_batch()
    labels = torch.tensor([[40, 41, 42, 2], [50, 2, -100, -100]])
    out = model(input_ids=src, attention_mask=mask, labels=labels)
    decoder_input_ids = torch.tensor([[1, 40, 41, 42], [1, 50, 2, 0]])
    logits = model(input_ids=src, attention_mask=mask, decoder_input_ids=decoder_input_ids)
    assert torch.equal(out.logits, logits)
    expected = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert model.token_embedding.weight.grad is not None
    loss, same_logits = model(input_ids=src, attention_mask=mask, labels=labels, return_dict=False)
    assert torch.equal(loss, out.loss) and torch.equal(same_logits, logits)
    assert isinstance(model(src), torch.Tensor), "upstream-style calls still return the logits tensor"


@pytest.mark.parametrize("kwargs, error, message", [
    ({"unknown_kwarg": 1}, TypeError, "unexpected keyword argument 'unknown_kwarg'"),
    ({"output_attentions": True}, TypeError, "unexpected keyword argument 'output_attentions'"),
    ({"src_tokens": "src", "input_ids": "src"}, TypeError,
     r"got the encoder tokens twice, as src_tokens= and as input_ids="),
    ({"query": "src", "src_tokens": "src"}, TypeError, r"got the encoder tokens twice, as src_tokens= and as query="),
    ({"input_ids": "src", "key": "tgt", "decoder_input_ids": "tgt"}, TypeError, "got the decoder tokens twice"),
    ({"input_ids": "src", "attention_mask": "mask", "src_key_padding_mask": "kpm"}, TypeError,
     "got the encoder padding mask twice, as src_key_padding_mask= and as attention_mask="),
    ({"input_ids": "src", "key": "tgt", "value": "src"}, TypeError, r"value= is upstream's unused alias"),
    ({"input_ids": "src", "attention_mask": "short"}, ValueError,
     r"attention_mask must have the shape of the encoder tokens \[2, 6\], got \[2, 5\]"),
    ({"input_ids": "src", "decoder_input_ids": "tgt", "labels": "src"}, ValueError,
     r"labels must have the shape of the decoder tokens \[2, 5\], got \[2, 6\]"),
    ({"attention_mask": "mask"}, TypeError, "needs the encoder tokens"),
])
def test_keywords_the_model_cannot_honour_raise(kwargs, error, message):
    model = byte_model()
    src, mask, tgt = _padded_batch()
    values = {"src": src, "tgt": tgt, "mask": mask, "kpm": mask == 0, "short": mask[:, :5]}
    with pytest.raises(error, match=message):
        model(**{k: values.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()})


def test_upstream_aliases_and_value_repeating_the_decoder_tokens_still_work():
    model = byte_model()
    src, mask, tgt = _padded_batch()
    with torch.no_grad():
        expected = model(src, tgt, src_mask=None, src_key_padding_mask=mask == 0)
        assert torch.equal(model(query=src, key=tgt, value=tgt, key_padding_mask=mask == 0), expected)
        assert torch.equal(model(input_ids=src, decoder_input_ids=tgt, attention_mask=mask.bool()), expected)
