"""--bf16 on every SIMD tier: with the tier lowered by APT_FAST_SIMD to what a CPU without AVX-512 BF16 or AMX has
(avx2, scalar), bf16 fine-tuning still runs, on the fp32 conversion fallback; `apt-fast info` says which tier runs
bf16 attention (AMX tiles, AVX-512 BF16 dot products or the fallback), from the SIMD tier in use and the CPU's
features."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from simd_tiers import ALL_TIERS, at_tier

from apt_fast.commands.info import BF16_ATTENTION_TIERS, bf16_attention_tier

EXPECTED_TIER = {"amx": "amx", "avx512": "avx512", "avx2": "fallback", "scalar": "fallback"}
# Run the command line with the tier the environment asks for, after printing the tier in use.
CLI_AT_TIER = "import sys, apt_fast._C as C; from apt_fast.cli import main; print(C.simd_level()); sys.exit(main())"


def _cli(argv, level: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI_AT_TIER, *map(str, argv)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "APT_FAST_SIMD": level, "OMP_NUM_THREADS": "1"})


def _bf16_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("bf16 attention"))


@pytest.mark.parametrize("level", ["avx2", "scalar"])
def test_bf16_fine_tune_runs_on_the_fallback_tier(level, model_dir, train_file, tmp_path):
    save_path = tmp_path / "tuned"
    result = _cli(["fine-tune", "--model-path", model_dir(), "--data-path", train_file, "--save-path", save_path,
                   "--bf16", "--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3", "--no-tensorboard",
                   "--quiet"], level)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == level
    log = json.loads((save_path / "training_log.json").read_text())
    losses = [h["loss"] for h in log["history"]]
    assert log["settings"]["bf16"] is True and len(losses) == 4 and all(map(math.isfinite, losses))


@pytest.mark.parametrize("tier", ALL_TIERS)
def test_info_names_the_bf16_attention_tier(tier, run_cli):
    with at_tier(tier):
        code, out, _ = run_cli(["info"])
    assert code == 0
    assert _bf16_line("\n".join(out)) == f"bf16 attention (--bf16): {BF16_ATTENTION_TIERS[EXPECTED_TIER[tier]]}"


def test_info_follows_apt_fast_simd():
    result = _cli(["info"], "avx2")
    assert result.returncode == 0, result.stderr
    assert _bf16_line(result.stdout) == f"bf16 attention (--bf16): {BF16_ATTENTION_TIERS['fallback']}"


ZEN4 = dict(avx512_bf16=True, amx_tile=False, amx_int8=False, amx_bf16=False, os_amx=False, amx_permitted=False)
SAPPHIRE_RAPIDS = dict(ZEN4, amx_tile=True, amx_int8=True, amx_bf16=True, os_amx=True, amx_permitted=True)


@pytest.mark.parametrize("level, features, expected", [
    ("amx", SAPPHIRE_RAPIDS, "amx"),
    ("avx512", SAPPHIRE_RAPIDS, "avx512"),  # APT_FAST_SIMD=avx512: no AMX
    ("avx2", SAPPHIRE_RAPIDS, "fallback"),
    ("amx", dict(SAPPHIRE_RAPIDS, amx_permitted=False), "avx512"),  # the OS refused the tile data
    ("avx512", ZEN4, "avx512"),
    ("scalar", ZEN4, "fallback"),
    ("avx512", dict(ZEN4, avx512_bf16=False), "fallback"),  # AVX-512 without BF16 (Ice Lake)
])
def test_bf16_attention_tier_from_level_and_features(level, features, expected):
    assert bf16_attention_tier(level, features) == expected
