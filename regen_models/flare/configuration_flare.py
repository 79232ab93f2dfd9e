"""Configuration of FLARE, the critique-steerable sequential recommender of the REGEN paper.

FLARE ("FLARE: Fusing Language Models and Collaborative Architectures for Recommender
Enhancement", https://arxiv.org/abs/2409.11699) is the recommender half of the hybrid system in
"REGEN: A Dataset and Benchmarks with Natural Language Critiques and Narratives"
(https://arxiv.org/abs/2503.11924, section 4.2.1).
"""

from __future__ import annotations

from transformers import PretrainedConfig


class FlareConfig(PretrainedConfig):
    r"""
    Args:
        num_items (`int`): size of the item vocabulary (ids 0 .. num_items - 1); two more
            embeddings are reserved for padding and the mask.
        content_dim (`int`): dimension of the frozen sentence encoder's vectors.
        content_fields (`list[str]`): the item texts that have content vectors, in order.
        encoder_name (`str`): the sentence encoder that made the content vectors and embeds
            critiques (`None`: the offline all-MiniLM-L6-v2).
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size: the
            bidirectional transformer over the sequence.
        hidden_dropout_prob, attention_probs_dropout_prob: its dropouts.
        max_sequence_length (`int`): the most recent interactions kept, the masked one included.
        num_latents (`int`): latent vectors of the Perceiver resampler that fuses, for each
            position, the item's ID embedding, its content vectors and the critique that led to it.
        content_tokens (`int`): 0: the resampler reads one pooled content vector per field;
            N > 0: the encoder's first N token vectors of each field instead, as the FLARE paper's
            resampler reads its language model's token embeddings (the output embeddings and the
            contrastive term keep the pooled vectors). The stored vectors grow N-fold.
        tie_item_embeddings (`bool`): score each item against its own input vector (its ID
            embedding plus the resampler's fusion of its ID and content), as BERT4Rec ties its
            input and output embeddings; `False`: its ID embedding plus its projected mean
            content vector. Tying runs the resampler over the whole catalog at every step.
        use_content (`bool`) / use_critiques (`bool`): switch the content vectors / critiques
            off (with both off the model is a BERT4Rec-style ID-only recommender).
        mask_probability (`float`): share of positions masked in training (cloze task).
        last_item_mask_probability (`float`): share of training sequences that instead hide only
            their most recent item, the task the model does at prediction time.
        prefix_crop_probability (`float`): share of training sequences first cut at a random
            position, a new one each epoch, so that every item of a history in turn ends a
            sequence (as the next-item training of SASRec and RecBole's BERT4Rec, which learn
            from every prefix).
        seen_item_bias (`bool`): learn one score added to every item the user has already shown
            (the visible ones of the sequence, and those of a longer history from before it), so
            that the model learns from the data how often users come back to an item (on
            MovieLens never: each movie is rated once; BENCHMARKS.md, FLARE).
        contrastive_weight (`float`): weight of the InfoNCE term that aligns an item's ID
            embedding with its content embedding; `contrastive_temperature` its temperature.
        category (`str`): the REGEN category whose item vocabulary the model was trained on.
    """

    model_type = "flare"

    def __init__(
        self,
        num_items: int = 1,
        content_dim: int = 384,
        content_fields: tuple[str, ...] | list[str] = ("title", "categories", "description"),
        encoder_name: str | None = None,
        hidden_size: int = 64,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 2,
        intermediate_size: int = 256,
        hidden_dropout_prob: float = 0.2,
        attention_probs_dropout_prob: float = 0.2,
        max_sequence_length: int = 50,
        num_latents: int = 4,
        content_tokens: int = 0,
        tie_item_embeddings: bool = False,
        use_content: bool = True,
        use_critiques: bool = True,
        mask_probability: float = 0.2,
        last_item_mask_probability: float = 0.0,
        prefix_crop_probability: float = 0.0,
        seen_item_bias: bool = False,
        contrastive_weight: float = 0.1,
        contrastive_temperature: float = 0.07,
        initializer_range: float = 0.02,
        category: str | None = None,
        **kwargs,
    ):
        counts = {  # name: (value, smallest allowed)
            "num_items": (num_items, 1),
            "content_dim": (content_dim, 1),
            "hidden_size": (hidden_size, 1),
            "num_hidden_layers": (num_hidden_layers, 1),
            "num_attention_heads": (num_attention_heads, 1),
            "intermediate_size": (intermediate_size, 1),
            "max_sequence_length": (max_sequence_length, 2),
            "num_latents": (num_latents, 1),
            "content_tokens": (content_tokens, 0),
        }
        for name, (value, least) in counts.items():
            # A YAML recipe's `16.0` reaches here unconverted; torch would fail far from it.
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(
                    f"{name} must be a whole number of at least {least}, got {value!r}"
                )
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be a multiple of num_attention_heads "
                f"({num_attention_heads})"
            )
        if not 0.0 < mask_probability < 1.0:
            raise ValueError(f"mask_probability must be in (0, 1), got {mask_probability}")
        shares = {
            "last_item_mask_probability": last_item_mask_probability,
            "prefix_crop_probability": prefix_crop_probability,
            "hidden_dropout_prob": hidden_dropout_prob,
            "attention_probs_dropout_prob": attention_probs_dropout_prob,
        }
        for name, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if contrastive_weight < 0:
            raise ValueError(
                f"contrastive_weight must be 0 (off) or more, got {contrastive_weight}"
            )
        if contrastive_temperature <= 0:
            raise ValueError(
                f"contrastive_temperature must be positive, got {contrastive_temperature}"
            )
        self.num_items = num_items
        self.content_dim = content_dim
        self.content_fields = list(content_fields)
        self.encoder_name = encoder_name
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_sequence_length = max_sequence_length
        self.num_latents = num_latents
        self.content_tokens = content_tokens
        self.tie_item_embeddings = tie_item_embeddings
        self.use_content = use_content
        self.use_critiques = use_critiques
        self.mask_probability = mask_probability
        self.last_item_mask_probability = last_item_mask_probability
        self.prefix_crop_probability = prefix_crop_probability
        self.seen_item_bias = seen_item_bias
        self.contrastive_weight = contrastive_weight
        self.contrastive_temperature = contrastive_temperature
        self.initializer_range = initializer_range
        self.category = category
        super().__init__(**kwargs)

    @property
    def pad_item_id(self) -> int:
        return self.num_items

    @property
    def mask_item_id(self) -> int:
        return self.num_items + 1
