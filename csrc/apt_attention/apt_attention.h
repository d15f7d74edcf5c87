// The [B, H, T, S] stages of APT's autopoietic attention (APT_SPEC.md §2, structure of §2.5), fp32:
//
//   head mean:  M = (1/H) Σ_h A_h with A_h = clamp(nan_to_num(s_h, 0, 10, -10), -15, 15) (T1, T2),
//               s_h = (scale q_h) k_hᵀ + key_pad + mask_h;  backward: dM -> dq, dk.
//   attention:  logits_h = clamp(nan_to_num(clamp(F + 0.2 (A_h - M), -15, 15) + mask_h, nan=0), -30, 30)
//               (T17-T19), then flash-style softmax · V with dropout; backward: dq, dk, dv and
//               dF = Σ_h d(logits) through the clamps (dM from this stage is -0.2 dF).
//
// F and M are [B, T, S] maps shared by the heads; [B, H, T, S] is never materialised. q, k, v and their
// gradients are fp32 or bf16 (T = float or Bf16: bf16 products with fp32 accumulation); the maps F, M, dM and dF,
// the masks and lse are fp32 whatever T (the statistics stay fp32). Semantics: apt_fast/reference/apt_attention_ops.py.
#pragma once

#include <cstdint>

#include "common/dispatch.h"
#include "flash_attention/attention_args.h"

namespace apt_fast {

// The masks of the pre-transform scores: key padding as an additive 0/-inf row per batch element,
// and the additive attention mask broadcast to [B, H, T, S].
struct AptMasks {
  const float* key_pad = nullptr;   // [B, S] contiguous, or null
  Broadcast4<const float> mask;     // or data == nullptr
};

template <class T>
struct AptHeadMeanArgs {
  AttentionDims dims;
  HeadTensor<const T> q, k;         // [B, H, T, d], [B, H, S, d]
  float scale = 1.0f;
  AptMasks masks;
  float* mean = nullptr;            // [B, T, S] out (forward)
  const float* grad_mean = nullptr; // [B, T, S] contiguous (backward)
  HeadTensor<T> dq, dk;             // (backward)
  int num_threads = 1;
};

template <class T>
struct AptAttentionArgs {
  AttentionIO<T> io;
  AptMasks masks;
  const float* f = nullptr;   // [B, T, S] contiguous: the shared bias F (T16)
  const float* m = nullptr;   // [B, T, S] contiguous: the head mean M
  float* grad_f = nullptr;    // [B, T, S] (backward), overwritten
};

template <class T>
void apt_head_mean_fwd(const AptHeadMeanArgs<T>& args);
template <class T>
void apt_head_mean_bwd(const AptHeadMeanArgs<T>& args);
template <class T>
void apt_attention_fwd(const AptAttentionArgs<T>& args);
template <class T>
void apt_attention_bwd(const AptAttentionArgs<T>& args);

APT_FAST_DECLARE_TIERS(void apt_head_mean_fwd(const AptHeadMeanArgs<float>& args))
APT_FAST_DECLARE_TIERS(void apt_head_mean_bwd(const AptHeadMeanArgs<float>& args))
APT_FAST_DECLARE_TIERS(void apt_attention_fwd(const AptAttentionArgs<float>& args))
APT_FAST_DECLARE_TIERS(void apt_attention_bwd(const AptAttentionArgs<float>& args))
APT_FAST_DECLARE_TIERS(void apt_head_mean_fwd(const AptHeadMeanArgs<Bf16>& args))
APT_FAST_DECLARE_TIERS(void apt_head_mean_bwd(const AptHeadMeanArgs<Bf16>& args))
APT_FAST_DECLARE_TIERS(void apt_attention_fwd(const AptAttentionArgs<Bf16>& args))
APT_FAST_DECLARE_TIERS(void apt_attention_bwd(const AptAttentionArgs<Bf16>& args))

}  // namespace apt_fast
