"""The demo's pruning stage: the fine-tuned model pruned (unstructured magnitude at 30/50/70/90%, and 2:4), scored
right after pruning and again after prune-finetune (fine-tuning with the pruned weights held at zero), each on the
same held-out words as the dense model; a markdown table and a plot of exact match and loss against sparsity.

Each setting is what ``apt-fast prune-finetune`` does: FineTuner loads the model, apt_fast.prune masks it, the
fine-tune Trainer trains it (the masks keep the pruned weights at zero through AdamW's steps).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import List, Sequence

from .task import Scores, score

RATIOS = (0.3, 0.5, 0.7, 0.9)  # unstructured magnitude, one threshold per layer
TABLE_FILE, PLOT_FILE = "pruning-accuracy.md", "pruning-accuracy.png"


@dataclass(frozen=True)
class PrunedRow:
    setting: str  # "magnitude 50%", "2:4"
    prune_type: str  # the prune-finetune flags
    sparsity: float  # of the pruned layers' weights
    pruned: Scores
    tuned: Scores


def _settings():
    from ..pruning import MagnitudePruneConfig, NMPruneConfig

    rows = [(f"magnitude {100 * r:.0f}%", f"--prune-type magnitude --prune-ratio {r:g}", MagnitudePruneConfig(r))
            for r in RATIOS]
    return rows + [("2:4", "--prune-type nm --nm 2:4 --prune-ratio 0.5", NMPruneConfig(2, 4))]


def prune_finetune_scores(model_path: str, train_path: str, val_path: str, test_path: str, workdir: str, *,
                          epochs: int, batch_size: int, learning_rate: float, seed: int,
                          bf16: bool = False) -> List[PrunedRow]:
    """For each setting: prune the model at ``model_path``, score it on ``test_path``, fine-tune it on
    ``train_path`` (``val_path`` picks the best model; ``bf16``: under bfloat16 autocast) and score it again."""
    from ..pruning import prune
    from ..train.finetune import FineTuner

    rows = []
    for setting, flags, config in _settings():
        finetuner = FineTuner(model_path)
        report = prune(finetuner.model, config)
        pruned = score(finetuner.model, finetuner.tokenizer, test_path)
        save_path = os.path.join(workdir, "pruned-" + setting.replace(" ", "-").replace("%", "").replace(":", "-"))
        finetuner.fine_tune(train_path, val_path, save_path, epochs=epochs, batch_size=batch_size,
                            learning_rate=learning_rate, eval_steps=50, tensorboard=False, seed=seed, bf16=bf16,
                            progress_bar=False)
        rows.append(PrunedRow(setting, flags, report.sparsity, pruned,
                              score(finetuner.model, finetuner.tokenizer, test_path)))
    return rows


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def markdown_table(dense: Scores, rows: Sequence[PrunedRow]) -> List[str]:
    """The table: exact match and loss of each setting after pruning and after prune-finetune, and the change in
    exact match (points) against the dense model."""
    lines = ["| model | sparsity | exact match, pruned | loss, pruned | exact match, + prune-finetune | "
             "loss, + prune-finetune | exact match vs dense (points) |",
             "|---|---:|---:|---:|---:|---:|---:|",
             f"| dense | 0% | {100 * dense.exact_match:.1f}% | {dense.loss:.3f} | - | - | - |"]
    for row in rows:
        lines.append(f"| {row.setting} | {100 * row.sparsity:.1f}% | {100 * row.pruned.exact_match:.1f}% | "
                     f"{row.pruned.loss:.3f} | {100 * row.tuned.exact_match:.1f}% | {row.tuned.loss:.3f} | "
                     f"{_points(row.tuned.exact_match - dense.exact_match)} |")
    return lines


def render_accuracy_plot(dense: Scores, rows: Sequence[PrunedRow], title: str) -> bytes:
    """PNG: exact match (left panel) and loss (right) against sparsity, unstructured magnitude as lines (pruned,
    + prune-finetune), the other settings as points, the dense model as a dashed line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    curve = [row for row in rows if row.setting.startswith("magnitude")]
    others = [row for row in rows if not row.setting.startswith("magnitude")]
    for ax, value, label in zip(figure.subplots(1, 2), (lambda s: 100 * s.exact_match, lambda s: s.loss),
                                ("exact match (%)", "loss")):
        xs = [100 * row.sparsity for row in curve]
        ax.plot(xs, [value(row.pruned) for row in curve], "o--", color="#c44e52", label="magnitude, pruned")
        ax.plot(xs, [value(row.tuned) for row in curve], "o-", color="#4c72b0", label="magnitude, + prune-finetune")
        for row in others:
            ax.plot([100 * row.sparsity], [value(row.pruned)], "s", color="#dd8452", label=f"{row.setting}, pruned")
            ax.plot([100 * row.sparsity], [value(row.tuned)], "D", color="#55a868",
                    label=f"{row.setting}, + prune-finetune")
        ax.axhline(value(dense), color="#333333", linestyle=":", linewidth=1, label="dense")
        ax.set_xlabel("sparsity (% of the pruned layers' weights)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    figure.axes[0].set_ylim(0, 105)
    ax.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_results(workdir: str, header: Sequence[str], dense: Scores, rows: Sequence[PrunedRow],
                  title: str) -> List[str]:
    """Write pruning-accuracy.md (``header`` lines, then the table) and pruning-accuracy.png into ``workdir``;
    returns the table's lines."""
    from ..atomic import atomic_write
    from ..train.sparsity_plot import write_plot

    table = markdown_table(dense, rows)

    def write_table(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join([*header, "", *table, ""]))

    atomic_write(os.path.join(workdir, TABLE_FILE), write_table)
    write_plot(os.path.join(workdir, PLOT_FILE), render_accuracy_plot(dense, rows, title))
    return table
