// Type sizes, the float16 scale conversion and the validated, SIMD-dispatched entry points of the
// GGUF block quantizers and float conversions (kernels: gguf_quant_kernels.cpp, gguf_float_kernels.cpp).
#include "gguf/gguf_quant.h"


namespace apt_fast {

int64_t gguf_type_size(GgufQuantType type) {
  switch (type) {
    case GgufQuantType::Q8_0: return 34;
    case GgufQuantType::Q4_0: return 18;
    case GgufQuantType::Q4_1: return 20;
    case GgufQuantType::Q5_0: return 22;
    case GgufQuantType::Q5_1: return 24;
  }
  APT_CHECK(false, "unsupported GGUF quantization type id " << static_cast<int>(type)
                                                            << " (2 Q4_0, 3 Q4_1, 6 Q5_0, 7 Q5_1, 8 Q8_0)");
  return 0;
}

uint16_t fp32_to_fp16_bits(float x) { return fp32_to_fp16_bits_inline(x); }

void gguf_quantize(const float* src, int64_t n, GgufQuantType type, uint8_t* dst, int num_threads) {
  gguf_type_size(type);  // rejects unknown type ids
  APT_CHECK(n >= 0 && n % kGgufBlockSize == 0, "element count must be a multiple of 32, got " << n);
  APT_CHECK(n == 0 || (src != nullptr && dst != nullptr), "src and dst pointers must be non-null");
  const int64_t n_blocks = n / kGgufBlockSize;
  APT_FAST_ROUTE(gguf_quantize_blocks, src, n_blocks, type, dst, num_threads);
}

void gguf_convert_float(const float* src, int64_t n, GgufFloatType type, uint16_t* dst, int num_threads) {
  APT_CHECK(type == GgufFloatType::F16 || type == GgufFloatType::BF16,
            "unsupported GGUF float type id " << static_cast<int>(type) << " (1 F16, 30 BF16)");
  APT_CHECK(n >= 0, "element count must be >= 0, got " << n);
  APT_CHECK(n == 0 || (src != nullptr && dst != nullptr), "src and dst pointers must be non-null");
  APT_FAST_ROUTE(gguf_convert_float, src, n, type, dst, num_threads);
}

}  // namespace apt_fast
