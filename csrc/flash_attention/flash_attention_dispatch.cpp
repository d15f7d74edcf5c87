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
  APT_FAST_ROUTE(flash_attention_bwd, args);
}

template void flash_attention_fwd(const FlashAttentionArgs<float>&);
template void flash_attention_fwd(const FlashAttentionArgs<Bf16>&);
template void flash_attention_bwd(const FlashAttentionArgs<float>&);
template void flash_attention_bwd(const FlashAttentionArgs<Bf16>&);

}  // namespace apt_fast
