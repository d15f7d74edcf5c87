"""APTConfig: the APT model's configuration as a transformers config (APT_SPEC.md §1)."""

from __future__ import annotations

import dataclasses

from transformers import PretrainedConfig

from .config_keys import check_extra_keys


class APTConfig(PretrainedConfig):
    """Configuration of :class:`~apt_fast.models.apt.APTModel`.

    Field names and defaults are upstream's ``APTModelConfiguration`` (the class defined next to the
    model). Fields that upstream keeps but the forward never reads are kept too, so configs round-trip:
    ``alpha``, ``beta`` and ``base_lr`` only drive APTLargeModel's parameter update rule, ``init_tau`` only
    sets the initial ``tau``; ``pad_token_id`` is the embedding's ``padding_idx`` and, with ``bos_token_id``
    / ``eos_token_id``, the ``generate`` defaults. Upstream quirks that follow from these fields:

    * ``epsilon`` enters the attention as clamp(fl32(epsilon), 0.05, 0.8);
    * ``activation == "gelu"`` selects exact-erf GELU and **any other string selects ReLU**;
    * LayerNorm always uses eps 1e-5 (no field controls it).

    apt_fast additions (off by default, so the defaults reproduce upstream's APTModel):

    * ``taylor_parameters``: register APTLargeModel's ``taylor_epsilon`` / ``taylor_alpha`` 0-dim
      parameters (unused in forward, first in the state_dict);
    * ``dbc_stochastic_low_rank``: with ``use_dbc_dac``, also run upstream's random low-rank gradient
      projection (spec §4), a defect kept only for bit-compatible training runs;
    * ``head_dim``: the width of each attention head; None (upstream) means d_model // num_heads. Structured
      head pruning (``apt_fast.pruning``) sets it, so that fewer heads of the original width, num_heads x
      head_dim < d_model, describe the smaller q/k/v/out projections.

    A keyword that is no field is checked (:mod:`.config_keys`): another model's name for a field
    (``num_layers``, ``n_heads``, ...) or a near miss is a ValueError naming the field meant; transformers'
    own keys and upstream's inert trainer keys pass; anything else is kept with an
    ``UnknownConfigKeyWarning``.
    """

    model_type = "apt"
    attribute_map = {"hidden_size": "d_model", "num_attention_heads": "num_heads"}

    vocab_size: int = 30522
    d_model: int = 768
    max_seq_len: int = 2048
    num_encoder_layers: int = 12
    num_decoder_layers: int = 12
    num_heads: int = 12
    d_ff: int = 3072
    dropout: float = 0.1
    activation: str = "gelu"
    epsilon: float = 1e-6
    alpha: float = 0.1
    beta: float = 0.01
    init_tau: float = 1.0
    sr_ratio: int = 4
    use_autopoietic: bool = True
    base_lr: float = 3e-5
    batch_first: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 101
    eos_token_id: int | None = 102
    use_dbc_dac: bool = True
    rank_ratio_proj: float = 0.1
    rank_ratio_res: float = 0.05
    dbc_threshold: float = 1e-6
    dbc_iterations: int = 1
    taylor_parameters: bool = False
    dbc_stochastic_low_rank: bool = False
    head_dim: int | None = None
    is_encoder_decoder: bool = True
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        check_extra_keys(kwargs, (f.name for f in dataclasses.fields(self)), self.attribute_map)
        super().__post_init__(**kwargs)
        self._validate()

    def _validate(self) -> None:
        for name in ("vocab_size", "d_model", "max_seq_len", "num_heads", "d_ff", "sr_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"APTConfig.{name} must be a positive int, got {value!r}")
        for name in ("num_encoder_layers", "num_decoder_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"APTConfig.{name} must be an int >= 0, got {value!r}")
        if self.head_dim is None and self.d_model % self.num_heads != 0:
            raise ValueError(
                f"APTConfig.d_model must be divisible by num_heads ({self.num_heads}), got {self.d_model}"
            )
        if self.head_dim is not None and (not isinstance(self.head_dim, int) or isinstance(self.head_dim, bool)
                                          or self.head_dim < 1):
            raise ValueError(f"APTConfig.head_dim must be None or a positive int, got {self.head_dim!r}")
        if self.d_model % 2 != 0:
            raise ValueError(f"APTConfig.d_model must be even (sin/cos positional encoding), got {self.d_model}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"APTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.batch_first is not True:
            raise ValueError(
                f"APTConfig.batch_first must be True (upstream's batch_first=False path is broken), "
                f"got {self.batch_first!r}"
            )
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"APTConfig.pad_token_id must be None or in [0, {self.vocab_size}), got {self.pad_token_id}"
            )

    @property
    def attention_head_dim(self) -> int:
        """The width of each attention head: ``head_dim``, or d_model // num_heads when it is None."""
        return self.head_dim if self.head_dim is not None else self.d_model // self.num_heads

    @property
    def sr_hidden_dim(self) -> int:
        """Hd = max(16, d_model // sr_ratio), the width of the attention's sr_conv MLP."""
        return max(16, self.d_model // self.sr_ratio)
