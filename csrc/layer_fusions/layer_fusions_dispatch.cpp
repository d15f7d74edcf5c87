// The layer fusions' entry points: validate the arguments, then route to the kernel of the active tier.
#include "layer_fusions/layer_fusions.h"

namespace apt_fast {
namespace {

void check_shape(int64_t rows, int64_t width, const void* x, const void* out) {
  APT_CHECK(rows >= 0, "rows must be >= 0, got " << rows);
  APT_CHECK(width > 0, "width must be > 0, got " << width);
  APT_CHECK(rows == 0 || (x != nullptr && out != nullptr), "input and output pointers must be non-null");
}

void check_norm(const AddLayerNormArgs& a) {
  check_shape(a.rows, a.width, a.x, a.residual);
  APT_CHECK(a.rows == 0 || (a.weight != nullptr && a.bias != nullptr && a.mean != nullptr && a.rstd != nullptr),
            "weight, bias, mean and rstd pointers must be non-null");
  APT_CHECK(a.eps >= 0.0f, "eps must be >= 0, got " << a.eps);
}

}  // namespace

void add_layer_norm_fwd(const AddLayerNormArgs& args) {
  check_norm(args);
  APT_CHECK(args.rows == 0 || args.out != nullptr, "out pointer must be non-null");
  APT_FAST_ROUTE(add_layer_norm_fwd, args);
}

void add_layer_norm_bwd(const AddLayerNormArgs& args) {
  check_norm(args);
  APT_CHECK(args.grad_out != nullptr && args.grad_sum != nullptr && args.grad_weight != nullptr &&
                args.grad_bias != nullptr,
            "grad_out, grad_sum, grad_weight and grad_bias pointers must be non-null");
  APT_FAST_ROUTE(add_layer_norm_bwd, args);
}

void bias_gelu_fwd(const BiasGeluArgs& args) {
  check_shape(args.rows, args.width, args.x, args.out);
  APT_CHECK(args.rows == 0 || args.bias != nullptr, "bias pointer must be non-null");
  APT_FAST_ROUTE(bias_gelu_fwd, args);
}

void bias_gelu_bwd(const BiasGeluArgs& args) {
  check_shape(args.rows, args.width, args.x, args.grad_x);
  APT_CHECK(args.bias != nullptr && args.grad_out != nullptr && args.grad_bias != nullptr,
            "bias, grad_out and grad_bias pointers must be non-null");
  APT_FAST_ROUTE(bias_gelu_bwd, args);
}

}  // namespace apt_fast
