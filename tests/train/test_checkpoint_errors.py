"""apt_fast.load's errors on unreadable checkpoints, as Python callers get them: a CheckpointError naming the
file, and for a refused pickle what was refused, never torch's advice to load with weights_only=False."""

from __future__ import annotations

import shutil

import pytest
import torch

import apt_fast
from apt_fast.models.apt.errors import CheckpointError


class Foreign:
    """Pickled by reference (this test module), so torch.load(weights_only=True) refuses it."""


def test_non_utf8_config_names_the_file(tmp_path, tiny_model_dir):
    model_dir = tmp_path / "latin1-config"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "config.json").write_bytes(b'{"model_type": "caf\xe9"}')
    with pytest.raises(CheckpointError) as err:
        apt_fast.load(model_dir)
    assert str(err.value) == (f"{model_dir / 'config.json'}: the config is not UTF-8 text (invalid continuation byte "
                              f"at byte 19)")


def test_refused_pickle_says_what_was_refused(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"model_state_dict": Foreign()}, path)
    with pytest.raises(CheckpointError) as err:
        apt_fast.load(path)
    assert str(err.value) == (f"{path}: not a checkpoint of tensors (Unsupported global: GLOBAL {__name__}.Foreign "
                              f"was not an allowed global by default); torch.load(weights_only=True) refused it, "
                              f"nothing was unpickled")
    assert err.value.__cause__ is None and err.value.__suppress_context__  # torch's advice is not chained either
