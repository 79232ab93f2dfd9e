"""Configuration of LUMEN, the LLM that names the next item and writes about it.

LUMEN ("REGEN: A Dataset and Benchmarks with Natural Language Critiques and Narratives",
https://arxiv.org/abs/2503.11924, section 4.2.2) adds an item embedding table and an item softmax
head to a causal language model, so that every item of the catalog is a single token that the
model both reads (in the purchase history) and writes (as its recommendation).
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

# The tokens LUMEN adds to its LM's tokenizer: the paper's ID_TOKEN placeholder, whose input
# embedding is replaced by an item's, and the switch after which the decoder names an item.
ITEM_TOKEN = "<item>"
SWITCH_TOKEN = "<start_of_item>"


class LumenConfig(PretrainedConfig):
    r"""
    Args:
        text_config (`PretrainedConfig` or `dict`): the wrapped causal LM's config (Gemma 3 first,
            any `AutoModelForCausalLM` model works).
        num_items (`int`): size of the item vocabulary (item ids 0 .. num_items - 1).
        item_token_id (`int`): the placeholder token (the paper's `ID_TOKEN`): the input
            embedding at each of its positions is replaced by the embedding of an item.
        switch_token_id (`int`): the text token after which the decoder names an item: the
            hidden state at its position is scored against the item vocabulary.
        item_embedding_dim (`int`, *optional*): dimension of the item table. `None` (the paper):
            the LM's hidden size. Smaller: a factorised table, `[num_items, item_embedding_dim]`
            and a projection to the hidden size, so that a large catalog does not outweigh a
            small LM.
        tie_item_head (`bool`): score items against the same vectors that are read in the
            input (as the LM ties its own output layer to its token embeddings); otherwise the
            head has a table of its own.
        item_loss_weight (`float`): the joint loss is `text_loss + item_loss_weight * item_loss`.
        item_initializer_range (`float`): standard deviation of the item table at
            initialisation; set to the LM's token embedding spread, so that an item and a word
            enter the model on the same scale.
        item_logit_scale (`float`): the initial value of the learned factor on the item scores.
            Set so that the untrained head scores items with a spread of about one (an LM's
            final hidden states are long: unscaled, random item vectors would give a confident,
            wrong ranking and a loss far above a uniform guess, whose gradient swamps the rest).
        base_model (`str`): the base LM the model was built from ("embedded", a Hub id or a path).
        category (`str`): the REGEN category whose item vocabulary the model was trained on.
        with_critiques (`bool`): whether its prompts carried the users' critiques.
        kinds (`list[str]`): the narrative kinds it was trained to write.
        max_prompt_tokens (`int`, *optional*): the prompt's token budget (older purchases are
            cut first); `max_new_tokens` (`dict[str, int]`) the narrative length per kind.
    """

    model_type = "lumen"
    sub_configs = {"text_config": AutoConfig}

    def __init__(
        self,
        text_config: PretrainedConfig | dict | None = None,
        num_items: int = 1,
        item_token_id: int | None = None,
        switch_token_id: int | None = None,
        item_embedding_dim: int | None = None,
        tie_item_head: bool = True,
        item_loss_weight: float = 1.0,
        item_initializer_range: float = 0.02,
        item_logit_scale: float = 1.0,
        base_model: str | None = None,
        category: str | None = None,
        with_critiques: bool = True,
        kinds: list[str] | None = None,
        max_prompt_tokens: int | None = None,
        max_new_tokens: dict[str, int] | None = None,
        **kwargs,
    ):
        if isinstance(text_config, dict):
            text_config = CONFIG_MAPPING[text_config["model_type"]](**text_config)
        if num_items < 1:
            raise ValueError(f"num_items must be at least 1, got {num_items}")
        if item_embedding_dim is not None and item_embedding_dim < 1:
            raise ValueError(f"item_embedding_dim must be positive, got {item_embedding_dim}")
        if item_loss_weight < 0:
            raise ValueError(f"item_loss_weight must not be negative, got {item_loss_weight}")
        self.text_config = text_config
        self.num_items = num_items
        self.item_token_id = item_token_id
        self.switch_token_id = switch_token_id
        self.item_embedding_dim = item_embedding_dim
        self.tie_item_head = tie_item_head
        self.item_loss_weight = item_loss_weight
        self.item_initializer_range = item_initializer_range
        self.item_logit_scale = item_logit_scale
        self.base_model = base_model
        self.category = category
        self.with_critiques = with_critiques
        self.kinds = list(kinds or [])
        self.max_prompt_tokens = max_prompt_tokens
        self.max_new_tokens = dict(max_new_tokens or {})
        super().__init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size

    @property
    def factorised(self) -> bool:
        return self.item_embedding_dim is not None and self.item_embedding_dim != self.hidden_size

    @property
    def item_dim(self) -> int:
        return self.item_embedding_dim or self.hidden_size
