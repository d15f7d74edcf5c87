// Fused distillation loss over [rows, vocab] logits: forward KL, reverse KL or generalized JSD at a
// temperature, plus an optional hard-label cross-entropy, with the student gradient computed in the
// same pass over each row. Semantics: apt_fast/reference/distill_loss.py.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/dispatch.h"

namespace apt_fast {

enum class Divergence : int { ForwardKL = 0, ReverseKL = 1, JSD = 2 };

struct DistillLossArgs {
  const void* student = nullptr;  // [rows, vocab] dtype, unit stride along vocab
  int64_t student_row_stride = 0;
  const void* teacher = nullptr;  // [rows, vocab] dtype, unit stride along vocab
  int64_t teacher_row_stride = 0;
  Dtype dtype = Dtype::Float32;
  int64_t rows = 0;
  int64_t vocab = 0;
  const int64_t* target = nullptr;  // [rows] or null: hard labels, also the ignore mask
  int64_t ignore_index = -100;
  Divergence divergence = Divergence::ForwardKL;
  float temperature = 1.0f;
  float jsd_beta = 0.5f;
  float alpha = 1.0f;      // weight of T^2 * divergence
  float ce_weight = 0.0f;  // weight of the cross-entropy on the untempered student logits
  float grad_scale = 1.0f; // the reduction's factor, folded into the gradient
  float* loss = nullptr;   // [rows] out, fp32, unscaled per-row loss (0 for ignored rows)
  void* grad = nullptr;    // [rows, vocab] dtype out, or null to skip the gradient
  int64_t grad_row_stride = 0;
  int num_threads = 1;
};

// Validates the arguments and runs the kernel of the active SIMD level.
void distill_loss_fwd(const DistillLossArgs& args);

APT_FAST_DECLARE_TIERS(void distill_loss_fwd(const DistillLossArgs& args))

}  // namespace apt_fast
