// Tensor views shared by the flash-style attention kernels (flash_attention, apt_attention).
// Torch-free: raw pointers and element strides handed over from apt_fast/backends/cpu/views.py.
#pragma once

#include <cstdint>

#include "common/checks.h"

namespace apt_fast {

// A [B, H, L, d] tensor with unit stride along d (any other strides).
template <class T>
struct HeadTensor {
  T* data = nullptr;
  int64_t stride_b = 0, stride_h = 0, stride_l = 0;
  T* at(int64_t b, int64_t h, int64_t l) const { return data + b * stride_b + h * stride_h + l * stride_l; }
};

// A tensor broadcast to [B, H, T, S]: stride 0 along broadcast dims. data == nullptr means absent.
template <class T>
struct Broadcast4 {
  T* data = nullptr;
  int64_t stride_b = 0, stride_h = 0, stride_t = 0, stride_s = 0;
  T* at(int64_t b, int64_t h, int64_t t) const { return data + b * stride_b + h * stride_h + t * stride_t; }
};

struct AttentionDims {
  int64_t batch = 0, heads = 0, q_len = 0, kv_len = 0, head_dim = 0;
};

// Inputs and outputs every flash-style kernel shares. Forward: q, k, v -> out, lse. Backward: also
// reads out, lse and grad_out, and writes dq, dk, dv (all fp32).
struct AttentionIO {
  AttentionDims dims;
  HeadTensor<const float> q, k, v;  // [B, H, T, d], [B, H, S, d], [B, H, S, d]
  float scale = 1.0f;               // scores = (scale * q) . k^T
  float dropout_p = 0.0f;           // on the normalised probabilities
  uint64_t seed = 0;                // dropout stream (drawn from torch's generator by the caller)
  HeadTensor<float> out;            // [B, H, T, d]
  float* lse = nullptr;             // [B, H, T] contiguous; -inf for rows with no finite logit
  HeadTensor<const float> grad_out; // [B, H, T, d] (backward)
  HeadTensor<float> dq, dk, dv;     // (backward)
  int num_threads = 1;
};

// Validates what every flash-style kernel reads and writes (sizes, pointers, dropout); the backward's
// buffers too when `backward`. Defined in flash_attention_dispatch.cpp.
void check_attention_io(const AttentionIO& io, bool backward);

}  // namespace apt_fast
