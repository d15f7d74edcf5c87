// Conversions from the (pointer, strides...) tuples that apt_fast/backends/cpu/views.py makes for the
// attention kernels to the torch-free views of csrc/flash_attention/attention_args.h.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>

#include "flash_attention/attention_args.h"

namespace apt_fast {

using HeadView = std::array<int64_t, 4>;       // (data_ptr, stride_b, stride_h, stride_l)
using BroadcastView = std::array<int64_t, 5>;  // (data_ptr or 0, stride_b, stride_h, stride_t, stride_s)
using DimsView = std::array<int64_t, 5>;       // (B, H, T, S, d)

template <class T>
HeadTensor<T> head_tensor(const HeadView& v) {
  return HeadTensor<T>{reinterpret_cast<T*>(v[0]), v[1], v[2], v[3]};
}

template <class T>
Broadcast4<T> broadcast4(const BroadcastView& v) {
  return Broadcast4<T>{reinterpret_cast<T*>(v[0]), v[1], v[2], v[3], v[4]};
}

inline AttentionDims attention_dims(const DimsView& v) { return AttentionDims{v[0], v[1], v[2], v[3], v[4]}; }

// The forward fields of AttentionIO.
inline AttentionIO attention_io(const DimsView& dims, const HeadView& q, const HeadView& k, const HeadView& v,
                                float scale, float dropout_p, uint64_t seed, const HeadView& out, int64_t lse,
                                int num_threads) {
  AttentionIO io;
  io.dims = attention_dims(dims);
  io.q = head_tensor<const float>(q);
  io.k = head_tensor<const float>(k);
  io.v = head_tensor<const float>(v);
  io.scale = scale;
  io.dropout_p = dropout_p;
  io.seed = seed;
  io.out = head_tensor<float>(out);
  io.lse = reinterpret_cast<float*>(lse);
  io.num_threads = num_threads;
  return io;
}

// Adds the backward fields.
inline void attention_io_grads(AttentionIO& io, const HeadView& grad_out, const HeadView& dq, const HeadView& dk,
                               const HeadView& dv) {
  io.grad_out = head_tensor<const float>(grad_out);
  io.dq = head_tensor<float>(dq);
  io.dk = head_tensor<float>(dk);
  io.dv = head_tensor<float>(dv);
}

}  // namespace apt_fast
