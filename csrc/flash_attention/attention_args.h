// Tensor views shared by the flash-style attention kernels (flash_attention, apt_attention).
// Torch-free: raw pointers and element strides handed over from apt_fast/backends/cpu/views.py.
#pragma once

#include <cstdint>

#include "common/checks.h"

namespace apt_fast {

using Bf16 = uint16_t;  // the bits of a bfloat16 (the high half of an fp32)

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

// Inputs and outputs every flash-style kernel shares, in element type T (float, or Bf16: bf16 products with
// fp32 accumulation, fp32 softmax). Forward: q, k, v -> out, lse. Backward: also reads out, lse and
// grad_out, and writes dq, dk, dv. lse is fp32 whatever T.
template <class T>
struct AttentionIO {
  AttentionDims dims;
  HeadTensor<const T> q, k, v;      // [B, H, T, d], [B, H, S, d], [B, H, S, d]
  float scale = 1.0f;               // scores = (scale * q) . k^T
  float dropout_p = 0.0f;           // on the normalised probabilities
  uint64_t seed = 0;                // dropout stream (drawn from torch's generator by the caller)
  HeadTensor<T> out;                // [B, H, T, d]
  float* lse = nullptr;             // [B, H, T] contiguous; -inf for rows with no finite logit
  HeadTensor<const T> grad_out;     // [B, H, T, d] (backward)
  HeadTensor<T> dq, dk, dv;         // (backward)
  int num_threads = 1;
};

// Validates what every flash-style kernel reads and writes (sizes, pointers, dropout); the backward's
// buffers too when `backward`.
template <class T>
void check_attention_io(const AttentionIO<T>& io, bool backward) {
  const AttentionDims& d = io.dims;
  APT_CHECK(d.batch >= 0 && d.heads >= 0 && d.q_len >= 0 && d.kv_len >= 0,
            "attention sizes must be >= 0, got B=" << d.batch << " H=" << d.heads << " T=" << d.q_len
                                                   << " S=" << d.kv_len);
  APT_CHECK(d.head_dim > 0, "head_dim must be > 0, got " << d.head_dim);
  APT_CHECK(io.q.data && io.k.data && io.v.data && io.out.data && io.lse, "q, k, v, out and lse must be non-null");
  APT_CHECK(io.dropout_p >= 0.0f && io.dropout_p < 1.0f, "dropout_p must be in [0, 1), got " << io.dropout_p);
  if (backward)
    APT_CHECK(io.grad_out.data && io.dq.data && io.dk.data && io.dv.data,
              "grad_out, dq, dk and dv must be non-null in the backward");
}

}  // namespace apt_fast
