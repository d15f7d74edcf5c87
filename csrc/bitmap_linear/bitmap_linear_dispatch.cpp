// The bitmap sparse linear entry points: validate, then run the vector tier in use.
#include <atomic>
#include <cstring>

#include "bitmap_linear/bitmap_linear.h"

namespace apt_fast {
namespace {

// Measured on a Sapphire Rapids-class Xeon, 2 threads, K = N = 4096 at 50% density: from this many rows of x
// the transposed loops (work per kept weight) beat streaming the weight once per block of 4 rows.
std::atomic<int64_t> many_rows_from{16};

void check_weight(const BitmapWeight& w, int64_t m) {
  APT_CHECK(w.n > 0 && w.k > 0, "out_features and in_features must be > 0, got " << w.n << " and " << w.k);
  APT_CHECK(m >= 0, "rows must be >= 0, got " << m);
  APT_CHECK(w.bitmap && w.row_offsets, "the bitmap and row_offsets must be non-null");
  APT_CHECK(w.row_offsets[0] == 0 && w.nnz() >= 0, "row_offsets must start at 0 and end at nnz >= 0, got "
            << w.row_offsets[0] << " and " << w.nnz());
  APT_CHECK(w.values || w.nnz() == 0, "values must be non-null when nnz = " << w.nnz() << " > 0");
  APT_CHECK(w.value_type != ValueType::Int8 || w.scales, "int8 values need scales");
}

}  // namespace

int64_t bitmap_many_rows() { return many_rows_from.load(); }

void set_bitmap_many_rows(int64_t rows) {
  APT_CHECK(rows >= 1, "bitmap_many_rows must be >= 1, got " << rows);
  many_rows_from.store(rows);
}

void bitmap_linear(const BitmapLinearArgs& args) {
  check_weight(args.w, args.m);
  if (args.m == 0) return;
  APT_CHECK(args.x && args.y, "x and y must be non-null");
  APT_CHECK(args.x_stride >= args.w.k && args.y_stride >= args.w.n, "row strides must cover a row");
  if (args.w.value_type == ValueType::Int8) APT_FAST_ROUTE(bitmap_int8_linear_kernel, args);
  APT_FAST_ROUTE(bitmap_float_linear_kernel, args, many_rows_from.load());
}

void bitmap_linear_backward(const BitmapBackwardArgs& args) {
  check_weight(args.w, args.m);
  APT_CHECK(!(args.grad_values && args.w.value_type == ValueType::Int8),
            "int8 values are frozen: grad_values must be null");
  if (args.m == 0 && args.grad_values) {  // sums over no rows: zero (fp32 or bf16 zero bits)
    const int64_t element = args.w.value_type == ValueType::Float32 ? 4 : 2;
    std::memset(args.grad_values, 0, static_cast<size_t>(args.w.nnz() * element));
  }
  if (args.m == 0 || (!args.grad_x && !args.grad_values)) return;
  APT_CHECK(args.grad_y && args.grad_y_stride >= args.w.n, "grad_y must be non-null with a row stride >= "
            << args.w.n);
  APT_CHECK(!args.grad_values || (args.x && args.x_stride >= args.w.k), "grad_values needs x with a row stride >= "
            << args.w.k);
  APT_FAST_ROUTE(bitmap_backward_kernel, args, many_rows_from.load());
}

}  // namespace apt_fast
