"""Register apt_fast's model with transformers' Auto classes as transformers loads them.

``import apt_fast`` must stay fast, and transformers takes seconds to import, so apt_fast does not import
it. transformers offers no lazy registration (``AutoConfig.register`` and the others take the classes
themselves), so :func:`install` puts a finder on ``sys.meta_path`` that notices when transformers' own
modules have run and registers then:

* ``transformers.models.auto.configuration_auto`` has run: ``AutoConfig`` learns model_type "apt";
* ``transformers.models.auto.modeling_auto`` has run (and ``transformers.modeling_utils`` is not half
  imported): ``AutoModel`` and ``AutoModelForSeq2SeqLM`` map APTConfig to APTModel;
* ``transformers.models.auto.tokenization_auto`` has run: ``AutoTokenizer`` knows apt_fast's tokenizers;
* ``transformers.quantizers.auto`` has run: ``from_pretrained`` refuses a model quantized by apt_fast with a
  message pointing to ``apt_fast.load``.

A step whose module was imported before apt_fast runs at once, so either import order works. Nothing is
imported until transformers itself is; the finder leaves ``sys.meta_path`` once every step has run. A
registration that fails (an incompatible transformers) is a warning, never a broken transformers import.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings

_CONFIG_UTILS = "transformers.configuration_utils"
_MODELING_UTILS = "transformers.modeling_utils"

# (module whose import triggers the step, modules that must not be half imported, function in apt.registration)
_STEPS = [
    ("transformers.models.auto.configuration_auto", (_CONFIG_UTILS,), "register_config"),
    ("transformers.models.auto.modeling_auto", (_CONFIG_UTILS, _MODELING_UTILS), "register_models"),
    ("transformers.models.auto.tokenization_auto", (_CONFIG_UTILS,), "register_tokenizers"),
    ("transformers.quantizers.auto", (_CONFIG_UTILS,), "register_quantization_refusal"),
]
_WATCHED = frozenset(name for trigger, waits, _ in _STEPS for name in (trigger, *waits))
_executed: set[str] = set()  # watched modules whose code has run (their spec still says _initializing)
_pending = list(_STEPS)


def _complete(name: str) -> bool:
    module = sys.modules.get(name)
    if module is None:
        return False
    return name in _executed or not getattr(getattr(module, "__spec__", None), "_initializing", False)


def _half_imported(name: str) -> bool:
    return name in sys.modules and not _complete(name)


def _run_ready_steps() -> None:
    for step in list(_pending):
        trigger, waits, function = step
        if step not in _pending or not _complete(trigger) or any(_half_imported(w) for w in waits):
            continue
        _pending.remove(step)
        try:
            from .apt import registration

            getattr(registration, function)()
        except Exception as err:
            warnings.warn(f"apt_fast: could not register APT with transformers ({function}): "
                          f"{type(err).__name__}: {err}", RuntimeWarning, stacklevel=2)
    if not _pending and _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


class _Finder:
    """Finds nothing itself: for a watched module it asks the other finders and wraps the loader's
    ``exec_module`` (on the loader instance, so its class is unchanged) to run the ready steps after it."""

    def __init__(self) -> None:
        self._finding: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _WATCHED or fullname in self._finding:
            return None
        self._finding.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding.discard(fullname)
        loader = getattr(spec, "loader", None)
        if loader is not None and not getattr(loader.exec_module, "_apt_fast_notifies", False):
            loader.exec_module = _notifying(loader.exec_module)
        return spec


def _notifying(exec_module):
    def run_then_register(module) -> None:
        exec_module(module)
        _executed.add(module.__name__)
        _run_ready_steps()

    run_then_register._apt_fast_notifies = True
    return run_then_register


_FINDER = _Finder()


def install() -> None:
    """Register now what transformers has already imported, and the rest as transformers imports it."""
    if _pending and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    _run_ready_steps()
