// Fused pointwise pieces of a transformer layer, forward and backward (semantics: apt_fast/reference/layer_fusions.py):
//   add_layer_norm: out = LayerNorm(x + residual) * weight + bias over each row (biased variance, eps inside the root);
//   bias_gelu:      out = GELU(x + bias), the exact (erf) GELU.
// Rows are contiguous [rows, width] in float32 or bfloat16; weight, bias and the statistics are float32. Backward
// passes recompute x + residual (or x + bias) from the inputs instead of keeping them.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/dispatch.h"

namespace apt_fast {

struct AddLayerNormArgs {
  const void* x = nullptr;         // [rows, width] dtype
  const void* residual = nullptr;  // [rows, width] dtype
  const float* weight = nullptr;   // [width]
  const float* bias = nullptr;     // [width]
  Dtype dtype = Dtype::Float32;
  int64_t rows = 0;
  int64_t width = 0;
  float eps = 1e-5f;
  void* out = nullptr;    // [rows, width] dtype, forward output
  float* mean = nullptr;  // [rows], forward output, read by the backward
  float* rstd = nullptr;  // [rows], forward output, read by the backward
  // Backward only:
  const void* grad_out = nullptr;  // [rows, width] dtype
  void* grad_sum = nullptr;        // [rows, width] dtype: the gradient of x + residual (so of x and of residual)
  float* grad_weight = nullptr;    // [width]
  float* grad_bias = nullptr;      // [width]
  int num_threads = 1;
};

struct BiasGeluArgs {
  const void* x = nullptr;       // [rows, width] dtype
  const float* bias = nullptr;   // [width]
  Dtype dtype = Dtype::Float32;
  int64_t rows = 0;
  int64_t width = 0;
  void* out = nullptr;  // [rows, width] dtype, forward output
  // Backward only:
  const void* grad_out = nullptr;  // [rows, width] dtype
  void* grad_x = nullptr;          // [rows, width] dtype (also the gradient of x + bias)
  float* grad_bias = nullptr;      // [width]
  int num_threads = 1;
};

// Validate the arguments and run the kernel of the active SIMD level.
void add_layer_norm_fwd(const AddLayerNormArgs& args);
void add_layer_norm_bwd(const AddLayerNormArgs& args);
void bias_gelu_fwd(const BiasGeluArgs& args);
void bias_gelu_bwd(const BiasGeluArgs& args);

APT_FAST_DECLARE_TIERS(void add_layer_norm_fwd(const AddLayerNormArgs& args))
APT_FAST_DECLARE_TIERS(void add_layer_norm_bwd(const AddLayerNormArgs& args))
APT_FAST_DECLARE_TIERS(void bias_gelu_fwd(const BiasGeluArgs& args))
APT_FAST_DECLARE_TIERS(void bias_gelu_bwd(const BiasGeluArgs& args))

}  // namespace apt_fast
