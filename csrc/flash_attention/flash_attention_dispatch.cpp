// Flash attention's entry points: validate the views, then route to the kernel of the active tier.
#include "flash_attention/flash_attention.h"

namespace apt_fast {

void check_attention_io(const AttentionIO& io, bool backward) {
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

void flash_attention_fwd(const FlashAttentionArgs& args) {
  check_attention_io(args.io, false);
  APT_FAST_ROUTE(flash_attention_fwd, args);
}

void flash_attention_bwd(const FlashAttentionArgs& args) {
  check_attention_io(args.io, true);
  APT_FAST_ROUTE(flash_attention_bwd, args);
}

}  // namespace apt_fast
