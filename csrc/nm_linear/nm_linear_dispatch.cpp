// The N:M sparse linear layer's entry points: validate, then pick AMX (bf16 or int8 values, 2:4 / 4:8, from
// nm_amx_min_rows() rows, where the CPU has it) or the vector tier in use.
#include <atomic>
#include <cstring>

#include "nm_linear/nm_linear.h"

namespace apt_fast {
namespace {

// Measured on a Sapphire Rapids-class Xeon, 2 threads, K = N = 4096, 2:4: below this many rows the vector kernel
// (which reads the weights once, gathering x in registers) beats expanding them into tiles.
std::atomic<int64_t> amx_rows{16};

void check_weight(const NmWeight& w) {
  const NmShape& s = w.shape;
  APT_CHECK(s.group == 4 || s.group == 8, "m must be 4 or 8, got " << s.group);
  APT_CHECK(s.keep >= 1 && s.keep < s.group, "n must be in [1, " << s.group << "), got " << s.keep);
  APT_CHECK(s.n > 0, "out_features must be > 0, got " << s.n);
  APT_CHECK(s.k > 0 && s.k % s.group == 0,
            "in_features must be a positive multiple of m=" << s.group << ", got " << s.k);
  APT_CHECK(w.values && w.indices, "values and indices must be non-null");
  APT_CHECK(w.dtype != NmValues::Int8 || w.scales, "int8 values need scales");
}

bool use_amx(const NmLinearArgs& a) {
  return active_simd_level() == SimdLevel::Amx && a.w.dtype != NmValues::Float32 && a.w.shape.half_dense() &&
         a.m >= amx_rows.load();
}

}  // namespace

int64_t nm_amx_min_rows() { return amx_rows.load(); }

void set_nm_amx_min_rows(int64_t rows) {
  APT_CHECK(rows >= 1, "amx_min_rows must be >= 1, got " << rows);
  amx_rows.store(rows);
}

void nm_linear(const NmLinearArgs& args) {
  check_weight(args.w);
  APT_CHECK(args.m >= 0, "rows must be >= 0, got " << args.m);
  if (args.m == 0) return;
  APT_CHECK(args.x && args.y, "x and y must be non-null");
  APT_CHECK(args.x_stride >= args.w.shape.k && args.y_stride >= args.w.shape.n, "row strides must cover a row");
  if (use_amx(args)) return simd_amx::nm_linear_kernel(args);
  APT_FAST_ROUTE(nm_linear_kernel, args);
}

void nm_linear_backward(const NmBackwardArgs& args) {
  check_weight(args.w);
  APT_CHECK(args.m >= 0, "rows must be >= 0, got " << args.m);
  APT_CHECK(args.grad_values == nullptr || args.w.dtype != NmValues::Int8,
            "int8 values are frozen: no grad_values");
  if (args.m == 0) {
    if (args.grad_values) std::memset(args.grad_values, 0, args.w.shape.n * args.w.shape.kept() * sizeof(float));
    return;
  }
  APT_CHECK(args.x && args.grad_y, "x and grad_y must be non-null");
  APT_CHECK(args.x_stride >= args.w.shape.k && args.grad_stride >= args.w.shape.n, "row strides must cover a row");
  APT_FAST_ROUTE(nm_backward_kernel, args);
}

}  // namespace apt_fast
