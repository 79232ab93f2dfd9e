"""Configuration of the fusion narrator of "Beyond Retrieval: Generating Narratives in
Conversational Recommender Systems" (section 4.2): collaborative-filtering and content vectors of
a user's interactions, fused and mapped to soft tokens that prefix a causal LM's prompt.
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from regen_models.fusion.user_vectors import ALPHA, REGULARIZATION

SIGNALS = ("cf", "content", "both")
ADAPTERS = ("linear", "mlp")


def check_signals(signals: str) -> str:
    if signals not in SIGNALS:
        raise ValueError(
            f"unknown signals {signals!r}: expected one of {SIGNALS} (cf: the WALS vectors only, "
            "content: the sentence embeddings only, both: the two concatenated)"
        )
    return signals


class FusionConfig(PretrainedConfig):
    r"""
    Args:
        text_config (`PretrainedConfig` or `dict`): the wrapped causal LM's config (any
            `AutoModelForCausalLM` model; the embedded Gemma 3 270M by default).
        num_items (`int`): size of the item vocabulary (item ids 0 .. num_items - 1).
        signals (`str`): what represents an interaction: `cf` (its item's WALS vector),
            `content` (its item's sentence embedding) or `both` (the two concatenated).
        cf_dim (`int`): dimension of the WALS factors (the paper: 128).
        content_dim (`int`): dimension of the sentence encoder's vectors.
        content_fields (`list[str]`): the item texts averaged into an item's content vector.
        use_reviews (`bool`): add the user's review (its title and text, embedded as one text)
            to each history interaction's content vector: the unit-norm mean of the item's
            vector and the review's. The paper embeds an interaction's item metadata and review
            together; the target's review is a label and never enters. Needs content signals.
            `regen train fusion` turns it on; off here, so that a checkpoint saved before the
            option existed reads no reviews, as it was trained.
        encoder_name (`str`, *optional*): the sentence encoder of the content vectors (`None`:
            the offline all-MiniLM-L6-v2).
        cf_item_norm (`float`): the mean L2 norm of the trained WALS item vectors. Item vectors
            are divided by it, so that they have a norm of one on average, like the unit-norm
            content vectors, while an item's norm (which grows with its popularity) still
            differs from another's.
        cf_user_norm (`float`, *optional*): the same for the folded-in user vectors of the
            training users; needed by a user token with CF signals (`None` otherwise).
        wals_regularization, wals_alpha (`float`): the WALS fit's L2 weight and confidence
            scale (by default those of `wals.WalsSettings`), which the fold-in of a user's vector
            repeats.
        user_token (`bool`): open the soft tokens with one for the user: their WALS vector,
            folded in from their interactions, beside the mean content vector of those items.
            Off by default: the paper has one soft token per interaction and nothing else; the
            text prompt says which setting the vectors follow.
        prompt_names_user_token (`bool`): the text prompt says that the first vector stands for
            the user. Checkpoints saved before it existed (whose user token was on by default)
            were trained on the prompt that does not say so, and keep reading that one.
        adapter (`str`): `linear` (one projection: what the paper analyses in its Figure 6) or
            `mlp` (a hidden layer and a GELU: the paper's benchmark adapter).
        adapter_hidden_size (`int`, *optional*): the MLP's hidden width (`None`: the LM's).
        adapter_dropout (`float`): dropout on the adapter's input in training.
        max_interactions (`int`): the newest interactions kept per user (the item to write
            about included); one soft token each.
        prefix_token_id (`int`, *optional*): the token read before the soft tokens (the LM's
            begin-of-sequence token, which the text prompt then goes without).
        soft_token_std (`float`): the spread of the LM's token embeddings, which the adapter's
            untrained soft tokens start at.
        base_model (`str`): the base LM the model was built from ("embedded", a Hub id or a path).
        category (`str`): the REGEN category whose item vocabulary the model was trained on.
        kinds (`list[str]`): the narrative kinds it was trained to write.
        max_new_tokens (`dict[str, int]`): the narrative length budget per kind.
    """

    model_type = "fusion"
    sub_configs = {"text_config": AutoConfig}

    def __init__(
        self,
        text_config: PretrainedConfig | dict | None = None,
        num_items: int = 1,
        signals: str = "both",
        cf_dim: int = 128,
        content_dim: int = 384,
        content_fields: tuple[str, ...] | list[str] = ("title", "categories", "description"),
        encoder_name: str | None = None,
        use_reviews: bool = False,
        cf_item_norm: float = 1.0,
        cf_user_norm: float | None = None,
        wals_regularization: float = REGULARIZATION,
        wals_alpha: float = ALPHA,
        user_token: bool = False,
        prompt_names_user_token: bool = False,
        adapter: str = "mlp",
        adapter_hidden_size: int | None = None,
        adapter_dropout: float = 0.0,
        max_interactions: int = 50,
        prefix_token_id: int | None = None,
        soft_token_std: float = 0.02,
        base_model: str | None = None,
        category: str | None = None,
        kinds: list[str] | None = None,
        max_new_tokens: dict[str, int] | None = None,
        **kwargs,
    ):
        if isinstance(text_config, dict):
            text_config = CONFIG_MAPPING[text_config["model_type"]](**text_config)
        check_signals(signals)
        if adapter not in ADAPTERS:
            raise ValueError(f"unknown adapter {adapter!r}: expected one of {ADAPTERS}")
        if num_items < 1:
            raise ValueError(f"num_items must be at least 1, got {num_items}")
        if max_interactions < 1:
            raise ValueError(f"max_interactions must be at least 1, got {max_interactions}")
        if user_token and signals in ("cf", "both") and cf_user_norm is None:
            raise ValueError(
                "a user token with CF signals needs cf_user_norm, the mean norm of the training "
                "users' folded-in vectors (see training/train_fusion.py)"
            )
        for name, value in (("cf_item_norm", cf_item_norm), ("cf_user_norm", cf_user_norm)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.text_config = text_config
        self.num_items = num_items
        self.signals = signals
        self.cf_dim = cf_dim
        self.content_dim = content_dim
        self.content_fields = list(content_fields)
        self.encoder_name = encoder_name
        self.use_reviews = use_reviews
        self.cf_item_norm = float(cf_item_norm)
        self.cf_user_norm = None if cf_user_norm is None else float(cf_user_norm)
        self.wals_regularization = wals_regularization
        self.wals_alpha = wals_alpha
        self.user_token = user_token
        self.prompt_names_user_token = prompt_names_user_token
        self.adapter = adapter
        self.adapter_hidden_size = adapter_hidden_size
        self.adapter_dropout = adapter_dropout
        self.max_interactions = max_interactions
        self.prefix_token_id = prefix_token_id
        self.soft_token_std = soft_token_std
        self.base_model = base_model
        self.category = category
        self.kinds = list(kinds or [])
        self.max_new_tokens = dict(max_new_tokens or {})
        super().__init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size

    @property
    def uses_cf(self) -> bool:
        return self.signals in ("cf", "both")

    @property
    def uses_content(self) -> bool:
        return self.signals in ("content", "both")

    @property
    def reads_reviews(self) -> bool:
        return self.uses_content and self.use_reviews

    @property
    def input_dim(self) -> int:
        """Width of a fused interaction vector: the CF part, then the content part."""
        return self.cf_dim * self.uses_cf + self.content_dim * self.uses_content
