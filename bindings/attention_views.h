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

// Calls fn(T{}) with the element type of a dtype code: 0 float32 (T = float), 1 bfloat16 (T = Bf16).
template <class Fn>
void with_element_type(int dtype, Fn&& fn) {
  APT_CHECK(dtype == 0 || dtype == 1, "dtype code must be 0 (float32) or 1 (bfloat16), got " << dtype);
  if (dtype == 0) fn(float{}); else fn(Bf16{});
}

inline AttentionDims attention_dims(const DimsView& v) { return AttentionDims{v[0], v[1], v[2], v[3], v[4]}; }

// The forward fields of AttentionIO (T: float, or Bf16 for bf16 tensors).
template <class T>
AttentionIO<T> attention_io(const DimsView& dims, const HeadView& q, const HeadView& k, const HeadView& v, float scale,
                            float dropout_p, uint64_t seed, const HeadView& out, int64_t lse, int num_threads) {
  AttentionIO<T> io;
  io.dims = attention_dims(dims);
  io.q = head_tensor<const T>(q);
  io.k = head_tensor<const T>(k);
  io.v = head_tensor<const T>(v);
  io.scale = scale;
  io.dropout_p = dropout_p;
  io.seed = seed;
  io.out = head_tensor<T>(out);
  io.lse = reinterpret_cast<float*>(lse);
  io.num_threads = num_threads;
  return io;
}

// Adds the backward fields.
template <class T>
void attention_io_grads(AttentionIO<T>& io, const HeadView& grad_out, const HeadView& dq, const HeadView& dk,
                        const HeadView& dv) {
  io.grad_out = head_tensor<const T>(grad_out);
  io.dq = head_tensor<T>(dq);
  io.dk = head_tensor<T>(dk);
  io.dv = head_tensor<T>(dv);
}

}  // namespace apt_fast
