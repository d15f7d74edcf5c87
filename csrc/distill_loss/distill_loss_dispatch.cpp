// The distillation loss's entry point: validate the arguments, then route to the kernel of the active tier.
#include "distill_loss/distill_loss.h"

namespace apt_fast {

void distill_loss_fwd(const DistillLossArgs& args) {
  APT_CHECK(args.rows >= 0, "rows must be >= 0, got " << args.rows);
  APT_CHECK(args.vocab > 0, "vocab must be > 0, got " << args.vocab);
  APT_CHECK(args.temperature > 0.0f, "temperature must be > 0, got " << args.temperature);
  APT_CHECK(args.student != nullptr && args.teacher != nullptr && args.loss != nullptr,
            "student, teacher and loss pointers must be non-null");
  APT_CHECK(args.student_row_stride >= args.vocab && args.teacher_row_stride >= args.vocab,
            "row strides must be >= vocab (" << args.vocab << "), got student "
                                             << args.student_row_stride << ", teacher " << args.teacher_row_stride);
  APT_CHECK(args.grad == nullptr || args.grad_row_stride >= args.vocab,
            "grad row stride must be >= vocab (" << args.vocab << "), got " << args.grad_row_stride);
  if (args.target != nullptr && args.ce_weight != 0.0f) {
    for (int64_t row = 0; row < args.rows; ++row) {
      int64_t label = args.target[row];
      APT_CHECK(label == args.ignore_index || (label >= 0 && label < args.vocab),
                "target[" << row << "] must be in [0, " << args.vocab << ") or ignore_index ("
                          << args.ignore_index << "), got " << label);
    }
  }
  APT_FAST_ROUTE(distill_loss_fwd, args);
}

}  // namespace apt_fast
