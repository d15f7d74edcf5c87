"""transformers' from_pretrained of a directory quantized by apt_fast fails with one message pointing to
apt_fast.load, in either import order (where it would otherwise load a float model with random weights)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import apt_fast

CHECK = """
{imports}
try:
    AutoModelForSeq2SeqLM.from_pretrained({directory!r})
except Exception as error:
    print(type(error).__name__, error)
"""
ORDERS = {"apt_fast first": "import apt_fast\nfrom transformers import AutoModelForSeq2SeqLM",
          "transformers first": "from transformers import AutoModelForSeq2SeqLM\nimport apt_fast"}


@pytest.mark.parametrize("order", ORDERS)
def test_from_pretrained_points_to_apt_fast_load(tmp_path, make_model, tokenizer, order):
    model = make_model()
    apt_fast.quantize(model, apt_fast.Int8DynamicConfig(group_size=64))
    apt_fast.save(model, tmp_path, tokenizer)
    code = CHECK.format(imports=ORDERS[order], directory=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == (
        "CheckpointError this model was quantized by apt_fast (int8_dynamic, 16 layers); transformers' from_pretrained "
        "cannot build its quantized layers: load it with `model, tokenizer = apt_fast.load(path)`")
