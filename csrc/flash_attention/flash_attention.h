// Flash attention with an optional additive bias (broadcast to [B, H, T, S]) whose gradient is
// returned, a causal flag and an optional bool mask (non-zero = attend), forward and backward, for fp32 or
// bf16 q, k, v (see attention_args.h). Semantics: apt_fast/reference/flash_attention.py. A row with no visible
// key outputs 0 and lse -inf.
#pragma once

#include <cstdint>

#include "common/dispatch.h"
#include "flash_attention/attention_args.h"

namespace apt_fast {

// The additive bias, fp32 or bf16 (at most one has data), read in fp32.
struct BiasView {
  Broadcast4<const float> f32;
  Broadcast4<const Bf16> bf16;
};

template <class T>
struct FlashAttentionArgs {
  AttentionIO<T> io;
  BiasView bias;                   // or neither has data
  Broadcast4<const uint8_t> mask;  // non-zero = attend, or data == nullptr
  bool causal = false;             // top-left aligned: key j visible to query i when j <= i
  Broadcast4<float> grad_bias;     // backward: fp32 [Bb, Hb, Tb, Sb] contiguous buffer seen with broadcast strides,
  Broadcast4<Bf16> grad_bias_bf16; // or bf16 [B, H, T, S] contiguous (a bias without broadcast), or neither
};

// Validate the arguments and run the kernel of the active SIMD level.
template <class T>
void flash_attention_fwd(const FlashAttentionArgs<T>& args);
template <class T>
void flash_attention_bwd(const FlashAttentionArgs<T>& args);

APT_FAST_DECLARE_TIERS(void flash_attention_fwd(const FlashAttentionArgs<float>& args))
APT_FAST_DECLARE_TIERS(void flash_attention_bwd(const FlashAttentionArgs<float>& args))
APT_FAST_DECLARE_TIERS(void flash_attention_fwd(const FlashAttentionArgs<Bf16>& args))
APT_FAST_DECLARE_TIERS(void flash_attention_bwd(const FlashAttentionArgs<Bf16>& args))

}  // namespace apt_fast
