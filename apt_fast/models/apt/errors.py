"""The error every APT checkpoint loader raises (apt_fast.load, APTModel.from_pretrained)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: unknown format, unreadable or truncated file, missing config
    fields, or weights that do not match the config."""
