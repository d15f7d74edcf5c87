// The quantized linear layers' entry points: validate, then pick AMX (from amx_min_rows() rows, where the CPU
// has it) or the vector tier in use.
#include <atomic>

#include "quantized_linear/quantized_linear.h"

namespace apt_fast {
namespace {

// Measured on a Sapphire Rapids-class Xeon, 2 threads, K = N = 4096: below this many rows the vector kernels
// (which stream the weights once, decoding in registers) beat the tiles' set-up and per-block overheads.
std::atomic<int64_t> amx_rows{16};

void check_shape(const QuantizedShape& s, int64_t m) {
  APT_CHECK(s.n > 0 && s.k > 0, "out_features and in_features must be > 0, got " << s.n << " and " << s.k);
  APT_CHECK(m >= 0, "rows must be >= 0, got " << m);
  APT_CHECK(s.group_size > 0 && s.k % s.group_size == 0,
            "group_size must divide in_features " << s.k << ", got " << s.group_size);
  APT_CHECK(s.group_size == s.k || s.group_size % 32 == 0,
            "group_size must be a multiple of 32 or in_features (" << s.k << "), got " << s.group_size);
  APT_CHECK(s.group_size <= kMaxGroupK,
            "a group of more than " << kMaxGroupK << " inputs could overflow the int32 sums, got " << s.group_size);
}

bool use_amx(int64_t m) { return active_simd_level() == SimdLevel::Amx && m >= amx_rows.load(); }

}  // namespace

int64_t amx_min_rows() { return amx_rows.load(); }

void set_amx_min_rows(int64_t rows) {
  APT_CHECK(rows >= 1, "amx_min_rows must be >= 1, got " << rows);
  amx_rows.store(rows);
}

void int8_linear(const Int8LinearArgs& args) {
  check_shape(args.shape, args.m);
  APT_CHECK(args.activation_bits == 8 || args.activation_bits == 16,
            "activation_bits must be 8 or 16, got " << args.activation_bits);
  if (args.m == 0) return;
  APT_CHECK(args.x && args.panels && args.compensation && args.scales && args.y, "x, the panels, compensation, "
            "scales and y must be non-null");
  APT_CHECK(args.x_stride >= args.shape.k && args.y_stride >= args.shape.n, "row strides must cover a row");
  if (use_amx(args.m)) return simd_amx::int8_linear_kernel(args);
  APT_FAST_ROUTE(int8_linear_kernel, args);
}

void code_linear(const CodeLinearArgs& args) {
  check_shape(args.shape, args.m);
  if (args.m == 0) return;
  APT_CHECK(args.x && args.panels && args.scales && args.y, "x, the panels, scales and y must be non-null");
  APT_CHECK(args.x_stride >= args.shape.k && args.y_stride >= args.shape.n, "row strides must cover a row");
  if (use_amx(args.m)) return simd_amx::code_linear_kernel(args);
  APT_FAST_ROUTE(code_linear_kernel, args);
}

void fp8_quantize(const Fp8QuantizeArgs& args) {
  APT_CHECK(args.rows >= 0 && args.cols > 0, "fp8_quantize needs rows >= 0 and cols > 0, got " << args.rows << " and "
            << args.cols);
  APT_CHECK(args.group_size > 0 && args.cols % args.group_size == 0,
            "group_size must divide the columns " << args.cols << ", got " << args.group_size);
  APT_CHECK(args.x && args.scales && args.codes, "x, scales and codes must be non-null");
  APT_CHECK(args.x_stride >= args.cols, "the row stride must cover a row");
  APT_FAST_ROUTE(fp8_quantize_kernel, args);
}

}  // namespace apt_fast
