#include <pybind11/pybind11.h>

#include "bindings.h"
#include "distill_loss/distill_loss.h"

namespace py = pybind11;

namespace apt_fast {

APT_FAST_BINDINGS(distill_loss) {
  m.def(
      "distill_loss_fwd",
      [](uintptr_t student, int64_t student_row_stride, uintptr_t teacher, int64_t teacher_row_stride, int dtype,
         int64_t rows, int64_t vocab, uintptr_t target, int64_t ignore_index, int divergence, float temperature,
         float jsd_beta, float alpha, float ce_weight, float grad_scale, uintptr_t loss, uintptr_t grad,
         int64_t grad_row_stride, int num_threads) {
        APT_CHECK(dtype == 0 || dtype == 1, "dtype code must be 0 (float32) or 1 (bfloat16), got " << dtype);
        APT_CHECK(divergence >= 0 && divergence <= 2, "divergence code must be 0, 1 or 2, got " << divergence);
        DistillLossArgs args;
        args.student = reinterpret_cast<const void*>(student);
        args.student_row_stride = student_row_stride;
        args.teacher = reinterpret_cast<const void*>(teacher);
        args.teacher_row_stride = teacher_row_stride;
        args.dtype = static_cast<Dtype>(dtype);
        args.rows = rows;
        args.vocab = vocab;
        args.target = reinterpret_cast<const int64_t*>(target);
        args.ignore_index = ignore_index;
        args.divergence = static_cast<Divergence>(divergence);
        args.temperature = temperature;
        args.jsd_beta = jsd_beta;
        args.alpha = alpha;
        args.ce_weight = ce_weight;
        args.grad_scale = grad_scale;
        args.loss = reinterpret_cast<float*>(loss);
        args.grad = reinterpret_cast<void*>(grad);
        args.grad_row_stride = grad_row_stride;
        args.num_threads = num_threads;
        py::gil_scoped_release release;
        distill_loss_fwd(args);
      },
      py::arg("student"), py::arg("student_row_stride"), py::arg("teacher"), py::arg("teacher_row_stride"),
      py::arg("dtype"), py::arg("rows"), py::arg("vocab"), py::arg("target"), py::arg("ignore_index"),
      py::arg("divergence"), py::arg("temperature"), py::arg("jsd_beta"), py::arg("alpha"), py::arg("ce_weight"),
      py::arg("grad_scale"), py::arg("loss"), py::arg("grad"), py::arg("grad_row_stride"), py::arg("num_threads"),
      "Per-row distillation loss (fp32, [rows]) and, when grad != 0, the student gradient, in one pass.\n"
      "Pointers are tensor data_ptr() values (0 for none); see apt_fast/backends/cpu/distill_loss.py.");
}

}  // namespace apt_fast
