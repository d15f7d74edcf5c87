"""apt_fast: fast kernels, training and export for the APT (Autopoietic Transformer) model."""

__version__ = "0.1.0"
