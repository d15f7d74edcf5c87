"""Sample arguments of the distill_loss ops, for tests/ops/test_registered_ops.py."""

import torch


def _logits(rows, vocab, dtype):
    generator = torch.Generator().manual_seed(0)
    student = (torch.randn(rows, vocab, generator=generator) * 2).to(dtype)  # [N, V]
    teacher = (torch.randn(rows, vocab, generator=generator) * 2).to(dtype)  # [N, V]
    return student, teacher


def distill_loss_fwd():
    student, teacher = _logits(9, 33, torch.float32)
    target = torch.randint(0, 33, (9,), generator=torch.Generator().manual_seed(1))  # [N]
    yield (student, teacher, target, 2.0, "jsd", 0.5, 0.7, 0.3, -100, 0.25, True)
    student, teacher = _logits(5, 70, torch.bfloat16)
    yield (student, teacher, None, 1.0, "forward_kl", 0.5, 1.0, 0.0, -100, 1.0, False)


SAMPLES = {"distill_loss_fwd": distill_loss_fwd}
