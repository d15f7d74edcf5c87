"""`apt-fast distill`: distil a teacher APT model into a student with the fused distillation loss."""

from __future__ import annotations

import argparse

from ..train.config import DISTILL_DEFAULTS
from ..train.objectives import DISTILL_TYPES, DistillSettings
from ._training import add_training_arguments, check_save_path, train_config_from_args, training_runtime
from .progress import show_progress


def add_parser(subparsers) -> None:
    defaults = DistillSettings()
    parser = subparsers.add_parser(
        "distill", help="distil a teacher model into a smaller student",
        description="Train a student against a frozen teacher (eval mode, no gradients): per target token "
                    "alpha*T^2*KL(teacher||student) + beta*CE for 'response'; a token-similarity feature loss "
                    "for 'feature' and 'combined'. Teacher and student share the teacher's tokenizer.")
    parser.add_argument("--teacher", required=True, metavar="PATH", help="the teacher model")
    student = parser.add_mutually_exclusive_group(required=True)
    student.add_argument("--student", metavar="PATH", help="an existing student model")
    student.add_argument("--student-config", metavar="JSON", help="config of a new student (APTConfig fields)")
    parser.add_argument("--distill-type", choices=DISTILL_TYPES, default=defaults.distill_type,
                        help="default %(default)s")
    parser.add_argument("--temperature", type=float, default=defaults.temperature, help="default %(default)s")
    parser.add_argument("--alpha", type=float, default=defaults.alpha,
                        help="weight of the distillation term (default %(default)s)")
    parser.add_argument("--beta", type=float, default=defaults.beta,
                        help="weight of the hard-label cross-entropy (default %(default)s)")
    parser.add_argument("--feature-weight", type=float, default=defaults.feature_weight,
                        help="weight of the feature loss in 'feature' and 'combined' (default %(default)s)")
    add_training_arguments(parser, DISTILL_DEFAULTS, save_path="apt_model_distilled")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..train.distillation import distill

    check_save_path(args)
    config = train_config_from_args(args)
    with training_runtime(args) as runtime:
        distill(args.teacher, args.data_path, student=args.student, student_config=args.student_config,
                val_data_path=args.val_data_path, save_path=args.save_path, distill_type=args.distill_type,
                temperature=args.temperature, alpha=args.alpha, beta=args.beta, feature_weight=args.feature_weight,
                max_samples=args.max_samples, resume=args.resume, overwrite=args.overwrite, runtime=runtime,
                config=config, progress_bar=show_progress(args))
    return 0
