// Flash attention's entry points: validate the views, then route to the kernel of the active tier.
#include "flash_attention/flash_attention.h"

namespace apt_fast {

template <class T>
void flash_attention_fwd(const FlashAttentionArgs<T>& args) {
  check_attention_io(args.io, false);
  APT_FAST_ROUTE(flash_attention_fwd, args);
}

template <class T>
void flash_attention_bwd(const FlashAttentionArgs<T>& args) {
  check_attention_io(args.io, true);
  const Broadcast4<Bf16>& g = args.grad_bias_bf16;
  const AttentionDims& d = args.io.dims;
  APT_CHECK(!g.data || !args.grad_bias.data, "grad_bias and grad_bias_bf16 cannot both be given");
  APT_CHECK(!g.data || (g.stride_s == 1 && g.stride_t == d.kv_len && g.stride_h == d.q_len * d.kv_len &&
                        g.stride_b == d.heads * d.q_len * d.kv_len),
            "grad_bias_bf16 must be a contiguous [B, H, T, S] buffer");
  APT_FAST_ROUTE(flash_attention_bwd, args);
}

template void flash_attention_fwd(const FlashAttentionArgs<float>&);
template void flash_attention_fwd(const FlashAttentionArgs<Bf16>&);
template void flash_attention_bwd(const FlashAttentionArgs<float>&);
template void flash_attention_bwd(const FlashAttentionArgs<Bf16>&);

}  // namespace apt_fast
