"""Distillation: fused loss equals the plain PyTorch one at batch size > 1, the teacher stays frozen,
every distill type trains, the student's vocabulary must be the teacher's."""

from __future__ import annotations

import pytest
import torch
from train_helpers import TINY, make_tiny_model

from apt_fast.train import DistillObjective, DistillSettings, collate, distill, tokenize_examples
from apt_fast.train.records import Example

STUDENT = dict(TINY, d_model=8, num_encoder_layers=1, num_decoder_layers=1, d_ff=16)


def _batch(tokenizer):
    examples = [Example("abc", "cba"), Example("hello there", "ereht olleh"), Example("x", "x"), Example("qq", "qq")]
    data = tokenize_examples(examples, tokenizer, max_length=32)
    return collate(data, [0, 1, 2, 3], pad_id=0, bos_id=1, eos_id=2)


@pytest.mark.parametrize("distill_type", ["response", "combined"])
def test_fused_equals_unfused_at_batch_4(distill_type):
    teacher, tokenizer = make_tiny_model(seed=1)
    student, _ = make_tiny_model(seed=2, **{k: v for k, v in STUDENT.items() if k != "vocab_size"})
    batch = _batch(tokenizer)
    settings = DistillSettings(distill_type=distill_type)
    grads, losses = [], []
    for fused in (True, False):
        student.zero_grad()
        terms = DistillObjective(teacher, settings, fused=fused)(student, batch)
        loss = sum(s / c for s, c in terms.values())
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in student.parameters() if p.grad is not None]))
    # Two float32 code paths of the same loss (self-consistency): the fused one within float32 noise of the other.
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("distill_type", ["response", "feature", "combined"])
def test_distill_trains_a_student_with_a_frozen_teacher(tmp_path, train_file, tiny_model_dir, distill_type):
    from apt_fast import load

    teacher, tokenizer = load(tiny_model_dir)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student, _, config = distill(teacher, train_file, tokenizer=tokenizer, student_config=STUDENT,
                                 save_path=str(tmp_path / "student"), distill_type=distill_type, epochs=1,
                                 batch_size=8, learning_rate=3e-3, tensorboard=False)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert config.d_model == 8 and config.vocab_size == teacher.config.vocab_size
    reloaded, reloaded_tokenizer = load(str(tmp_path / "student"))
    assert reloaded.config.d_model == 8 and reloaded_tokenizer is not None


def test_student_vocabulary_must_match(tmp_path, train_file, tiny_model_dir):
    with pytest.raises(ValueError, match=r"the student's vocab_size must equal the teacher's \(259\), got 300"):
        distill(tiny_model_dir, train_file, student_config=dict(STUDENT, vocab_size=300),
                save_path=str(tmp_path / "s"))
    with pytest.raises(ValueError, match="give exactly one of --student"):
        distill(tiny_model_dir, train_file, save_path=str(tmp_path / "s"))


@pytest.mark.parametrize("kwargs, message", [
    ({"distill_type": "relation"}, "distill_type must be one of 'response', 'feature', 'combined', got 'relation'"),
    ({"alpha": 1.5}, "alpha must be in [0.0, 1.0], got 1.5"),
    ({"temperature": 0.0}, "temperature must be in (0.0, inf], got 0.0"),
])
def test_distill_settings_are_validated(kwargs, message):
    with pytest.raises(ValueError) as err:
        DistillSettings(**kwargs)
    assert str(err.value) == message
