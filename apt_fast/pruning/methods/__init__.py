"""One module per pruning method; importing this package registers them all (``@pruning_method(Config)``)."""

from . import block, magnitude, nm, structured, taylor, wanda  # noqa: F401
