"""`apt-fast demo`: the end-to-end demonstration (see :mod:`apt_fast.demo.run`)."""

from .run import QUICK, DemoSize, run_demo

__all__ = ["QUICK", "DemoSize", "run_demo"]
