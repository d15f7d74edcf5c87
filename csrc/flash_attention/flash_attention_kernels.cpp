// The flash-attention kernel: flash_core.h's driver with an additive-bias / bool-mask modifier.
// Written once against Vec and compiled once per SIMD level, for fp32 and bf16 q, k, v.
#include "flash_attention/flash_attention.h"

#include "common/simd/vec.h"
#include "flash_attention/flash_core.h"

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

inline float bias_value(float x) { return x; }
inline float bias_value(Bf16 x) { return bf16_value(x); }

// row[0, cols) += bias row (stride bs along S).
template <class B>
inline void add_bias_row(float* row, const B* brow, int64_t bs, int cols) {
  if (bs == 1) {
    for (int c = 0; c < cols; c += Vec::size) {
      const int n = std::min(Vec::size, cols - c);
      store_n(row + c, n, load_n(row + c, n) + load_n(brow + c, n));
      __builtin_prefetch(brow + kBlockN + c);  // the same row of the next key tile (a hint; may pass the end)
    }
  } else {
    for (int c = 0; c < cols; ++c) row[c] += bias_value(brow[c * bs]);
  }
}

// logits = scores + bias; -inf where the mask is zero. d(bias) = d(logits) = d(scores).
template <class T>
struct BiasMaskMod {
  const FlashAttentionArgs<T>* args;
  const float* bias = nullptr;
  const Bf16* bias_bf16 = nullptr;
  const uint8_t* mask = nullptr;

  void begin(int64_t b, int64_t h) {
    bias = args->bias.f32.data ? args->bias.f32.at(b, h, 0) : nullptr;
    bias_bf16 = args->bias.bf16.data ? args->bias.bf16.at(b, h, 0) : nullptr;
    mask = args->mask.data ? args->mask.at(b, h, 0) : nullptr;
  }

  void logits(int64_t i0, int64_t j0, int rows, int cols, float* s, int ld) {
    const Broadcast4<const float>& b32 = args->bias.f32;
    const Broadcast4<const Bf16>& b16 = args->bias.bf16;
    const int64_t ms = args->mask.stride_s;
    for (int r = 0; r < rows; ++r) {
      float* row = s + r * ld;
      if (bias != nullptr) add_bias_row(row, bias + (i0 + r) * b32.stride_t + j0 * b32.stride_s, b32.stride_s, cols);
      if (bias_bf16 != nullptr)
        add_bias_row(row, bias_bf16 + (i0 + r) * b16.stride_t + j0 * b16.stride_s, b16.stride_s, cols);
      if (mask != nullptr) {
        const uint8_t* mrow = mask + (i0 + r) * args->mask.stride_t + j0 * ms;
        for (int c = 0; c < cols; ++c)
          if (!mrow[c * ms]) row[c] = kNegInf;
      }
    }
  }

  const float* grad(int, int, float* dl, float*, int) const { return dl; }
};

template <class T>
void forward(const FlashAttentionArgs<T>& args) {
  flash_forward(args.io, args.causal, BiasMaskMod<T>{&args});
}

template <class T>
void backward(const FlashAttentionArgs<T>& args) {
  flash_backward(args.io, args.causal, BiasMaskMod<T>{&args}, BiasGradTarget{args.grad_bias, args.grad_bias_bf16});
}

}  // namespace

void flash_attention_fwd(const FlashAttentionArgs<float>& args) { forward(args); }
void flash_attention_bwd(const FlashAttentionArgs<float>& args) { backward(args); }
void flash_attention_fwd(const FlashAttentionArgs<Bf16>& args) { forward(args); }
void flash_attention_bwd(const FlashAttentionArgs<Bf16>& args) { backward(args); }

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
