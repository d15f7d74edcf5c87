// Flash attention with an optional additive bias (broadcast to [B, H, T, S]) whose gradient is
// returned, a causal flag and an optional bool mask (non-zero = attend), forward and backward, fp32.
// Semantics: apt_fast/reference/flash_attention.py. A row with no visible key outputs 0 and lse -inf.
#pragma once

#include <cstdint>

#include "common/dispatch.h"
#include "flash_attention/attention_args.h"

namespace apt_fast {

struct FlashAttentionArgs {
  AttentionIO io;
  Broadcast4<const float> bias;    // additive, or data == nullptr
  Broadcast4<const uint8_t> mask;  // non-zero = attend, or data == nullptr
  bool causal = false;             // top-left aligned: key j visible to query i when j <= i
  Broadcast4<float> grad_bias;     // backward: [Bb, Hb, Tb, Sb] contiguous buffer seen with broadcast strides
};

// Validate the arguments and run the kernel of the active SIMD level.
void flash_attention_fwd(const FlashAttentionArgs& args);
void flash_attention_bwd(const FlashAttentionArgs& args);

APT_FAST_DECLARE_TIERS(void flash_attention_fwd(const FlashAttentionArgs& args))
APT_FAST_DECLARE_TIERS(void flash_attention_bwd(const FlashAttentionArgs& args))

}  // namespace apt_fast
