"""FLARE: a bidirectional sequential recommender whose items fuse IDs, content and critiques.

Data flows through the modules in the order they appear here:

1. `FlareItemEncoder`: for every position of a user's sequence, a Perceiver resampler reads a small
   set of tokens (the item's learned ID embedding, the projected content vectors of its title,
   category path and description, or with `config.content_tokens` their token vectors, and the
   projected embedding of the critique that led to it) and returns one vector. A masked
   position has the mask embedding instead of the item's ID and no content, but keeps its
   critique: the critique that steers towards the hidden item is what lets a user redirect the
   recommendation.
2. `FlareModel`: position embeddings (counted back from the most recent interaction), a
   bidirectional transformer, and BERT4Rec's output transform, scored against every item of the
   vocabulary (full softmax). The output embedding of an item is its ID embedding plus its
   projected content, so rare items borrow from their text; with `config.tie_item_embeddings`
   it is the item's own input vector instead (ID plus the resampler's fusion), as BERT4Rec ties
   its input and output embeddings.
   With `config.seen_item_bias`, one learned score is added to the items the sequence already
   shows (not the masked ones): how likely a user is to come back to an item is learned from the
   data, which a dot product with the user's representation cannot express (an item the user
   chose lies close to what the model predicts for them).
3. The loss: cross-entropy of the masked items (BERT4Rec's cloze task) plus an InfoNCE term that
   aligns each item's ID embedding with its content embedding.

Sequences are left-padded, so the last position is always the most recent one; at prediction time
it holds the mask, and `FlareOutput.logits` scores it against the whole catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from regen_models.flare.configuration_flare import FlareConfig
from regen_models.items import ItemVocabularyMixin


@dataclass
class FlareOutput(ModelOutput):
    """
    loss: cloze cross-entropy plus the weighted contrastive term (when `labels` are given).
    logits: scores over the item vocabulary: `[masked positions, num_items]` with `labels`,
        `[batch, num_items]` for the last position otherwise.
    cloze_loss / contrastive_loss: the two parts of `loss`, for logging.
    hidden_states: the transformer's output, `[batch, length, hidden_size]`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cloze_loss: torch.FloatTensor | None = None
    contrastive_loss: torch.FloatTensor | None = None
    hidden_states: torch.FloatTensor | None = None


class PerceiverResampler(nn.Module):
    """A few learned latents cross-attend to a variable set of tokens; returns their mean."""

    def __init__(self, config: FlareConfig):
        super().__init__()
        size = config.hidden_size
        self.latents = nn.Parameter(torch.zeros(config.num_latents, size))
        self.norm_tokens = nn.LayerNorm(size)
        self.norm_latents = nn.LayerNorm(size)
        self.attention = nn.MultiheadAttention(
            size,
            config.num_attention_heads,
            dropout=config.attention_probs_dropout_prob,
            batch_first=True,
        )
        self.feed_forward = nn.Sequential(
            nn.LayerNorm(size),
            nn.Linear(size, config.intermediate_size),
            nn.GELU(),
            nn.Linear(config.intermediate_size, size),
        )

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """tokens `[n, k, hidden]`, present `[n, k]` (one True at least per row) -> `[n, hidden]`"""
        queries = self.norm_latents(self.latents).unsqueeze(0).expand(tokens.shape[0], -1, -1)
        keys = self.norm_tokens(tokens)
        attended, _ = self.attention(
            queries, keys, keys, key_padding_mask=~present, need_weights=False
        )
        latents = queries + attended
        latents = latents + self.feed_forward(latents)
        return latents.mean(dim=1)


class FlareItemEncoder(nn.Module):
    """One vector per sequence position from its item's ID, its content and its critique."""

    def __init__(self, config: FlareConfig):
        super().__init__()
        self.config = config
        size = config.hidden_size
        self.id_embeddings = nn.Embedding(
            config.num_items + 2, size, padding_idx=config.pad_item_id
        )
        fields = len(config.content_fields)
        # Token types: the ID, one per content field, the critique.
        self.token_types = nn.Embedding(2 + fields, size)
        self.content_projection = nn.Linear(config.content_dim, size)
        self.critique_projection = nn.Linear(config.content_dim, size)
        self.resampler = PerceiverResampler(config)
        # The frozen encoder's vectors, stored with the weights (half precision: the Clothing
        # catalog has 376,847 items): `[items, fields, dim]`, or `[items, fields, tokens, dim]`
        # with `content_tokens`. Zero vectors mark missing texts (and pad short ones).
        tokens = (config.content_tokens,) if config.content_tokens else ()
        self.register_buffer(
            "content_vectors",
            torch.zeros(config.num_items, fields, *tokens, config.content_dim, dtype=torch.float16),
            persistent=True,
        )

    def content_means(self) -> torch.Tensor:
        """`[num_items, content_dim]`: each item's mean present content vector."""
        return self._content_summary()[0]

    def content_present(self) -> torch.Tensor:
        """`[num_items, fields]` (`[num_items, fields, tokens]`): which vectors are not zero."""
        return self._content_summary()[1]

    def _content_summary(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, present), computed once: the vectors are frozen; recomputed only when they are
        replaced."""
        buffer = self.content_vectors
        key = (
            buffer.data_ptr(),
            buffer._version,
            buffer.device,
            self.content_projection.weight.dtype,
        )
        if getattr(self, "_content_summary_key", None) != key:
            vectors = buffer.to(self.content_projection.weight.dtype)
            present = vectors.abs().sum(-1) > 0
            if vectors.dim() == 4:  # token vectors: each field's normalised mean, as pooled
                vectors = F.normalize(_mean_present(vectors), dim=-1)
            self._content_summary_cache = (_mean_present(vectors), present)
            self._content_summary_key = key
        return self._content_summary_cache

    def content_embeddings(self, item_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Projected mean of the present content vectors: `[..., hidden]` (all items if None)."""
        means = self.content_means()
        return self.content_projection(means if item_ids is None else means[item_ids])

    def fuse_catalog(self) -> torch.Tensor:
        """`[num_items + 2, hidden]`: the resampler's reading of every item, padding and the mask,
        without critiques. With tied embeddings a training step needs it for the output side
        anyway, and the input side reads its rows instead of fusing the batch's items again."""
        ids = torch.arange(self.config.num_items + 2, device=self.id_embeddings.weight.device)
        return self._fuse(ids)

    def output_embeddings(self, fused_catalog: torch.Tensor | None = None) -> torch.Tensor:
        """`[num_items, hidden]`: what the transformer's output is scored against
        (`fused_catalog`: `fuse_catalog()`'s result, when the caller has it)."""
        num_items = self.config.num_items
        embeddings = self.id_embeddings.weight[:num_items]
        if self.config.tie_item_embeddings:
            if fused_catalog is None:
                items = torch.arange(num_items, device=embeddings.device)
                return embeddings + self._fuse(items)
            return embeddings + fused_catalog[:num_items]
        if self.config.use_content:
            embeddings = embeddings + self.content_embeddings()
        return embeddings

    def forward(
        self,
        item_ids: torch.Tensor,
        critique_vectors: torch.Tensor | None = None,
        critique_mask: torch.Tensor | None = None,
        fused_catalog: torch.Tensor | None = None,
    ) -> torch.Tensor:
        config = self.config
        batch, length = item_ids.shape
        flat_ids = item_ids.reshape(-1)
        if fused_catalog is not None:
            fused = fused_catalog[flat_ids]
        else:
            # Without a critique, a position's vector depends on its item alone: fuse each
            # distinct item of the batch once (items repeat across users; padding and masks are
            # one item each).
            distinct, inverse = torch.unique(flat_ids, return_inverse=True)
            fused = self._fuse(distinct)[inverse]
        if config.use_critiques and critique_vectors is not None:
            if critique_mask is None:
                critique_mask = critique_vectors.abs().sum(-1) > 0
            steered = (critique_mask.bool() & (item_ids != config.pad_item_id)).reshape(-1)
            if steered.any():
                critiques = critique_vectors.reshape(batch * length, -1)[steered]
                fused = fused.index_put(
                    (steered.nonzero().squeeze(1),), self._fuse(flat_ids[steered], critiques)
                )
        return self.id_embeddings(item_ids) + fused.reshape(batch, length, -1)

    def _fuse(self, item_ids: torch.Tensor, critiques: torch.Tensor | None = None) -> torch.Tensor:
        """item_ids `[n]` (with `critiques` `[n, content_dim]`, their embedded critiques) ->
        `[n, hidden]`: the resampler's reading of the ID, content and critique tokens."""
        config = self.config
        ids = self.id_embeddings(item_ids)
        tokens = (ids + self.token_types.weight[0]).unsqueeze(1)  # [n, tokens read, hidden]
        present = torch.ones_like(item_ids, dtype=torch.bool).unsqueeze(1)
        is_item = item_ids < config.num_items
        if config.use_content:
            safe_ids = torch.where(is_item, item_ids, torch.zeros_like(item_ids))
            # [n, content tokens, dim]: one per field, or `content_tokens` per field
            vectors = self.content_vectors[safe_ids].to(ids.dtype).flatten(1, -2)
            per_field = max(config.content_tokens, 1)
            fields = torch.arange(len(config.content_fields), device=item_ids.device)
            token_types = self.token_types(1 + fields.repeat_interleave(per_field))
            tokens = torch.cat([tokens, self.content_projection(vectors) + token_types], dim=1)
            there = self.content_present()[safe_ids].flatten(1)
            present = torch.cat([present, is_item.unsqueeze(1) & there], dim=1)
        if critiques is not None:
            critique = self.critique_projection(critiques.to(ids.dtype))
            tokens = torch.cat([tokens, (critique + self.token_types.weight[-1]).unsqueeze(1)], 1)
            present = torch.cat([present, torch.ones_like(present[:, :1])], dim=1)
        return self.resampler(tokens, present)


def _mean_present(vectors: torch.Tensor) -> torch.Tensor:
    """`[..., k, dim]` -> `[..., dim]`: the mean of the vectors that are not all zero (zero if
    none is)."""
    present = (vectors.abs().sum(-1, keepdim=True) > 0).to(vectors.dtype)
    return (vectors * present).sum(-2) / present.sum(-2).clamp(min=1.0)


class FlarePreTrainedModel(ItemVocabularyMixin, PreTrainedModel):
    config_class = FlareConfig
    base_model_prefix = "flare"
    main_input_name = "item_ids"

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, PerceiverResampler):
            nn.init.normal_(module.latents, mean=0.0, std=std)
        elif isinstance(module, FlareModel):
            nn.init.zeros_(module.output_bias)
            if module.config.seen_item_bias:
                nn.init.zeros_(module.seen_bias)


class FlareModel(FlarePreTrainedModel):
    def __init__(self, config: FlareConfig):
        super().__init__(config)
        size = config.hidden_size
        self.item_encoder = FlareItemEncoder(config)
        self.position_embeddings = nn.Embedding(config.max_sequence_length, size)
        self.embedding_norm = nn.LayerNorm(size)
        self.embedding_dropout = nn.Dropout(config.hidden_dropout_prob)
        layer = nn.TransformerEncoderLayer(
            size,
            config.num_attention_heads,
            config.intermediate_size,
            dropout=config.hidden_dropout_prob,
            activation="gelu",
            batch_first=True,
        )
        self.transformer = nn.TransformerEncoder(
            layer, config.num_hidden_layers, enable_nested_tensor=False
        )
        self.output_transform = nn.Sequential(nn.Linear(size, size), nn.GELU(), nn.LayerNorm(size))
        self.output_bias = nn.Parameter(torch.zeros(config.num_items))
        if config.seen_item_bias:
            self.seen_bias = nn.Parameter(torch.zeros(()))
        self.post_init()

    def set_content_vectors(self, vectors) -> None:
        """Copy the frozen encoder's item vectors `[num_items, fields, content_dim]` in."""
        vectors = torch.as_tensor(vectors)
        buffer = self.item_encoder.content_vectors
        if tuple(vectors.shape) != tuple(buffer.shape):
            raise ValueError(
                f"content vectors of shape {tuple(vectors.shape)} do not fit this model, which "
                f"expects {tuple(buffer.shape)} (items, fields, dimension)"
            )
        with torch.no_grad():
            buffer.copy_(vectors.to(buffer.dtype))

    def forward(
        self,
        item_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        critique_vectors: torch.Tensor | None = None,
        critique_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        earlier_item_ids: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> FlareOutput:
        """
        item_ids `[batch, length]`: left-padded item ids (`config.pad_item_id` pads,
            `config.mask_item_id` hides the items to predict).
        attention_mask `[batch, length]`: 1 for real positions (default: not padding).
        critique_vectors `[batch, length, content_dim]`: the embedded critique that led to each
            position's item (zeros where none); `critique_mask` marks the ones present.
        labels `[batch, length]`: the hidden item at masked positions, -100 elsewhere.
        earlier_item_ids `[batch, m]`: the user's items from before the sequence (padded with
            `config.pad_item_id`); with `config.seen_item_bias` they count as seen too.
        """
        config = self.config
        if attention_mask is None:
            attention_mask = item_ids != config.pad_item_id
        attention_mask = attention_mask.bool()
        length = item_ids.shape[1]
        if length > config.max_sequence_length:
            raise ValueError(
                f"sequences of {length} positions exceed max_sequence_length "
                f"({config.max_sequence_length}); keep the most recent ones"
            )
        # Position 0 is the most recent interaction (the last column, thanks to left padding).
        positions = torch.arange(length - 1, -1, -1, device=item_ids.device)
        fused_catalog = None
        if config.tie_item_embeddings and (self.training or torch.is_grad_enabled()):
            fused_catalog = self.item_encoder.fuse_catalog()
        hidden = self.item_encoder(item_ids, critique_vectors, critique_mask, fused_catalog)
        hidden = hidden + self.position_embeddings(positions)
        hidden = self.embedding_dropout(self.embedding_norm(hidden))
        hidden = self.transformer(hidden, src_key_padding_mask=~attention_mask)

        output_embeddings = self._output_embeddings(fused_catalog)
        seen_ids = item_ids
        if earlier_item_ids is not None:
            seen_ids = torch.cat([earlier_item_ids.to(item_ids.device), item_ids], dim=1)
        if labels is None:
            logits = self._score(hidden[:, -1], output_embeddings, seen_ids)
            return FlareOutput(logits=logits, hidden_states=hidden)
        selected = labels != -100
        rows = selected.nonzero()[:, 0]
        logits = self._score(hidden[selected], output_embeddings, seen_ids[rows])
        cloze_loss = F.cross_entropy(logits.float(), labels[selected])
        loss, contrastive_loss = cloze_loss, None
        if config.use_content and config.contrastive_weight > 0:
            contrastive_loss = self._contrastive_loss(item_ids, labels)
            loss = loss + config.contrastive_weight * contrastive_loss
        return FlareOutput(
            loss=loss,
            logits=logits,
            cloze_loss=cloze_loss.detach(),
            contrastive_loss=None if contrastive_loss is None else contrastive_loss.detach(),
            hidden_states=hidden,
        )

    def _output_embeddings(self, fused_catalog: torch.Tensor | None = None) -> torch.Tensor:
        """The item encoder's output embeddings; kept between calls while nothing can change them
        (inference: no gradient, weights untouched since), which makes a single user's
        full-catalog ranking cheap."""
        if self.training or torch.is_grad_enabled():
            self._cached_output = None
            return self.item_encoder.output_embeddings(fused_catalog)
        encoder = self.item_encoder
        weights = (*encoder.parameters(), *encoder.buffers())
        key = tuple((w.data_ptr(), w._version) for w in weights)
        cached = getattr(self, "_cached_output", None)
        if cached is None or cached[0] != key:
            self._cached_output = (key, encoder.output_embeddings())
        return self._cached_output[1]

    def _score(
        self, hidden: torch.Tensor, output_embeddings: torch.Tensor, item_ids: torch.Tensor
    ) -> torch.Tensor:
        """hidden `[n, hidden_size]`, item_ids `[n, m]`: the items each row's user has shown
        (the sequence it was read from, and any earlier ones) -> logits `[n, num_items]`."""
        logits = self.output_transform(hidden) @ output_embeddings.T + self.output_bias
        if not self.config.seen_item_bias:
            return logits
        # Padding and masks are ids past the vocabulary: they land in one extra column, dropped.
        num_items = self.config.num_items
        seen = torch.zeros(len(logits), num_items + 1, dtype=logits.dtype, device=logits.device)
        seen.scatter_(1, item_ids.clamp(max=num_items), 1.0)
        return logits + self.seen_bias * seen[:, :num_items]

    def _contrastive_loss(self, item_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """InfoNCE between the ID and content embeddings of the batch's distinct items."""
        items = torch.cat([item_ids[item_ids < self.config.num_items], labels[labels != -100]])
        items = torch.unique(items)
        encoder = self.item_encoder
        ids = F.normalize(encoder.id_embeddings(items), dim=-1)
        content = F.normalize(encoder.content_embeddings(items), dim=-1)
        similarity = ids @ content.T / self.config.contrastive_temperature
        targets = torch.arange(len(items), device=items.device)
        return (F.cross_entropy(similarity, targets) + F.cross_entropy(similarity.T, targets)) / 2

    @torch.no_grad()
    def recommend(self, top_k: int = 10, **inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, item ids) of the `top_k` best items for the masked last position."""
        logits = self(**inputs).logits
        return torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1)
