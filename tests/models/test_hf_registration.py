"""``import apt_fast`` alone registers model_type "apt" with transformers' Auto classes, in either import order,
without importing transformers itself."""

from __future__ import annotations

import subprocess
import sys

import pytest
from byte_models import byte_model, byte_tokenizer

CHECK = """
import sys
{imports}
config = AutoConfig.from_pretrained(DIR)
model = AutoModel.from_pretrained(DIR)
seq2seq = AutoModelForSeq2SeqLM.from_pretrained(DIR)
tokenizer = AutoTokenizer.from_pretrained(DIR)
print(type(config).__name__, type(model).__name__, type(seq2seq).__name__, type(tokenizer).__name__)
"""
ORDERS = {
    "apt_fast first": "import apt_fast\n"
                      "from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer",
    "transformers first": "from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer\n"
                          "import apt_fast",
    "transformers module first": "import transformers\nimport apt_fast\n"
                                 "from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer",
}


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("saved")
    byte_model().save_pretrained(directory, tokenizer=byte_tokenizer())
    return directory


@pytest.mark.parametrize("order", ORDERS)
def test_auto_classes_load_a_saved_directory(saved_dir, order):
    code = f"DIR = {str(saved_dir)!r}\n" + CHECK.format(imports=ORDERS[order])
    assert _run(code) == "APTConfig APTModel APTModel APTByteTokenizer"


def test_import_apt_fast_does_not_import_transformers():
    assert _run("import sys, apt_fast; print('transformers' in sys.modules)") == "False"
