"""`apt-fast demo --pruning` on a few dozen words: stages 1, 2 and the pruning stage run, the table has a row per
setting with sparsities as configured, and the plot is a PNG."""

from __future__ import annotations

import os

from pruning_cli_helpers import png_size

SETTINGS = ("magnitude 30%", "magnitude 50%", "magnitude 70%", "magnitude 90%", "2:4")


def test_pruning_demo_writes_the_table_and_plot(tmp_path, capsys):
    from apt_fast.demo import DemoSize, run_demo

    size = DemoSize(train_samples=64, base_epochs=1, finetune_samples=32, finetune_epochs=1, test_samples=8,
                    batch_size=16, prune_finetune_epochs=1)
    workdir = tmp_path / "demo"
    run_demo(str(workdir), size, pruning=True, progress=False)
    out = capsys.readouterr().out
    assert "== 3. prune the fine-tuned model" in out and "== 3. distil" not in out
    table = (workdir / "pruning-accuracy.md").read_text(encoding="utf-8").splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1] for line in table if line.startswith("| ")}
    assert list(rows)[1:] == ["dense", *SETTINGS]  # after the header row
    assert [rows[s] for s in SETTINGS] == ["30.0%", "50.0%", "70.0%", "90.0%", "50.0%"]
    assert png_size(workdir / "pruning-accuracy.png")[0] > 0
    assert all(os.path.isfile(workdir / f"pruned-{name}" / "model.safetensors")
               for name in ("magnitude-30", "magnitude-90", "2-4"))
