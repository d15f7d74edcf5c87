// The flash-attention kernel: flash_core.h's driver with an additive-bias / bool-mask modifier.
// Written once against Vec and compiled once per SIMD level.
#include "flash_attention/flash_attention.h"

#include "common/simd/vec.h"
#include "flash_attention/flash_core.h"

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

// logits = scores + bias; -inf where the mask is zero. d(bias) = d(logits) = d(scores).
struct BiasMaskMod {
  const FlashAttentionArgs* args;
  const float* bias = nullptr;
  const uint8_t* mask = nullptr;

  void begin(int64_t b, int64_t h) {
    bias = args->bias.data ? args->bias.at(b, h, 0) : nullptr;
    mask = args->mask.data ? args->mask.at(b, h, 0) : nullptr;
  }

  void logits(int64_t i0, int64_t j0, int rows, int cols, float* s, int ld) {
    const int64_t bs = args->bias.stride_s, ms = args->mask.stride_s;
    for (int r = 0; r < rows; ++r) {
      float* row = s + r * ld;
      if (bias != nullptr) {
        const float* brow = bias + (i0 + r) * args->bias.stride_t + j0 * bs;
        if (bs == 1) {
          for (int c = 0; c < cols; c += Vec::size) {
            const int n = std::min(Vec::size, cols - c);
            store_n(row + c, n, load_n(row + c, n) + load_n(brow + c, n));
            __builtin_prefetch(brow + kBlockN + c);  // the same row of the next key tile (a hint; may pass the end)
          }
        } else {
          for (int c = 0; c < cols; ++c) row[c] += brow[c * bs];
        }
      }
      if (mask != nullptr) {
        const uint8_t* mrow = mask + (i0 + r) * args->mask.stride_t + j0 * ms;
        for (int c = 0; c < cols; ++c)
          if (!mrow[c * ms]) row[c] = kNegInf;
      }
    }
  }

  const float* grad(int, int, float* dl, float*, int) const { return dl; }
};

}  // namespace

void flash_attention_fwd(const FlashAttentionArgs& args) {
  flash_forward(args.io, args.causal, BiasMaskMod{&args});
}

void flash_attention_bwd(const FlashAttentionArgs& args) {
  flash_backward(args.io, args.causal, BiasMaskMod{&args}, BiasGradTarget{args.grad_bias});
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
