"""The fusion narrator: a user's interactions as soft tokens in front of a causal LM's prompt.

Data flows through the modules in the order they appear here:

1. `FusionInputs`: each interaction's item is looked up in two frozen tables, its WALS vector
   (divided by the mean norm of the trained item vectors, so that it has a norm of one on
   average, like a content vector, while popular items keep their longer vectors) and its
   content vector (the unit-norm sentence embedding of its texts). With `use_reviews`, a history
   interaction's content vector is the unit-norm mean of its item's and of the user's review of
   it (`review_vectors`, embedded by the caller with the same encoder; the paper embeds the
   metadata and the review as one text); the target's review is a label and never enters. The
   vectors of the signals in use are concatenated, CF part first. The optional user token (not
   in the paper) gets the user's WALS vector, folded in from their interactions
   (`user_vectors.fold_in`) and divided by the training users' mean norm, beside the unit-norm
   mean of their interactions' content vectors.
2. `FusionAdapter`: a linear projection or an MLP maps every fused vector to one soft token of
   the LM's hidden size; it is multiplied by the factor the LM's embedding layer applies to its
   own tokens (Gemma: the square root of the hidden size), so that it enters on their scale.
3. The wrapped causal LM reads the begin-of-sequence token, the soft tokens (oldest interaction
   first, the item to write about last), then the text prompt, and writes the narrative.

In a batch the soft-token block and the text are each left-padded, so a row reads
`[pads][BOS, soft tokens][pads][text]`; the attention mask skips the pads and the position ids
count real tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.utils import ModelOutput

from regen_models.decoding import adopt_attention, run_decoder
from regen_models.fusion.configuration_fusion import FusionConfig
from regen_models.fusion.user_vectors import cached_gram, fold_in, mean_norm
from regen_models.items import ItemVocabularyMixin

IGNORE_INDEX = -100
NO_ITEM = -1  # pads `item_ids`


@dataclass
class FusionOutput(ModelOutput):
    """
    loss: cross-entropy of the labelled text tokens (with `labels`).
    logits: text logits of the text positions, `[batch, text length, vocab]` (`None` with
        `labels`: only the scored positions are projected).
    hidden_states: the LM's last hidden states over the whole sequence (soft block, then text).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: torch.FloatTensor | None = None


class FusionInputs(nn.Module):
    """The frozen tables, the normalisation and the concatenation."""

    def __init__(self, config: FusionConfig):
        super().__init__()
        self.config = config
        if config.uses_cf:
            self.register_buffer("cf_factors", torch.zeros(config.num_items, config.cf_dim))
        if config.uses_content:
            # Half precision: the Clothing catalog has 376,847 items.
            self.register_buffer(
                "content_vectors",
                torch.zeros(config.num_items, config.content_dim, dtype=torch.float16),
            )

    def parts(
        self, item_ids: torch.Tensor, dtype, review_vectors: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, ...]:
        """(normalised CF part, content part) of items `item_ids` (>= 0); None where unused.
        With `review_vectors` (`[..., content_dim]`, zero where an interaction has no review),
        an interaction's content part is the unit-norm mean of its item's vector and its
        review's."""
        config = self.config
        cf = content = None
        if config.uses_cf:
            cf = (self.cf_factors[item_ids] / config.cf_item_norm).to(dtype)
        if config.uses_content:
            content = self.content_vectors[item_ids].to(dtype)
            if review_vectors is not None:
                content = F.normalize(content + review_vectors.to(dtype), dim=-1)
        return cf, content

    def interactions(
        self, item_ids: torch.Tensor, dtype, review_vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`[..., input_dim]`: the fused vector of each item (pads map to item 0; mask them)."""
        parts = self.parts(item_ids.clamp(min=0), dtype, review_vectors)
        return torch.cat([part for part in parts if part is not None], dim=-1)

    def users(
        self, item_ids: torch.Tensor, dtype, review_vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`[batch, input_dim]`: the user token's fused vector from each row's interactions."""
        config = self.config
        present = item_ids >= 0
        parts = []
        if config.uses_cf:
            gram = cached_gram(self, self.cf_factors)
            users = fold_in(
                self.cf_factors, item_ids, config.wals_regularization, config.wals_alpha, gram
            )
            parts.append((users / config.cf_user_norm).to(dtype))
        if config.uses_content:
            _, vectors = self.parts(item_ids.clamp(min=0), dtype, review_vectors)
            mean = (vectors * present[..., None]).sum(1)
            parts.append(F.normalize(mean, dim=-1))
        return torch.cat(parts, dim=-1)


class FusionAdapter(nn.Module):
    """Fused vectors to soft tokens: one linear layer, or an MLP with one GELU hidden layer."""

    def __init__(self, config: FusionConfig):
        super().__init__()
        hidden = config.hidden_size
        self.dropout = nn.Dropout(config.adapter_dropout)
        if config.adapter == "linear":
            self.layers = nn.Sequential(nn.Linear(config.input_dim, hidden))
        else:
            width = config.adapter_hidden_size or hidden
            self.layers = nn.Sequential(
                nn.Linear(config.input_dim, width), nn.GELU(), nn.Linear(width, hidden)
            )

    @property
    def first_layer(self) -> nn.Linear:
        """The layer that reads the fused vector: for the linear adapter, the whole projection
        W = [W_cf | W_content] of the paper's embedding analysis."""
        return self.layers[0]

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return self.layers(self.dropout(fused))


class FusionPreTrainedModel(ItemVocabularyMixin, PreTrainedModel):
    config_class = FusionConfig
    base_model_prefix = "fusion"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        # Only the adapter: the wrapped LM initialises itself (or is loaded); the tables are
        # filled from WALS and the sentence encoder.
        if not isinstance(module, FusionAdapter):
            return
        config = self.config
        parts = config.uses_cf + config.uses_content  # each part has a norm of about one
        linears = [layer for layer in module.layers if isinstance(layer, nn.Linear)]
        for layer in linears:
            nn.init.zeros_(layer.bias)
        # Soft tokens start with the spread of the LM's token embeddings (`soft_token_std`).
        std = config.soft_token_std
        if len(linears) == 1:
            nn.init.normal_(linears[0].weight, std=std / parts**0.5)
        else:
            first, last = linears
            nn.init.normal_(first.weight, std=parts**-0.5)
            nn.init.normal_(last.weight, std=std / (0.4 * first.out_features) ** 0.5)


class FusionForCausalLM(FusionPreTrainedModel):
    def __init__(self, config: FusionConfig, language_model: PreTrainedModel | None = None):
        # What the caller asked for, before transformers gives this class its default.
        requested_attention = config._attn_implementation or (
            language_model.config._attn_implementation if language_model is not None else None
        )
        super().__init__(config)
        self.language_model = language_model or AutoModelForCausalLM.from_config(config.text_config)
        # One config object for the LM, so that what is set on this config (the attention
        # implementation, say) reaches the LM's layers.
        config.text_config = self.language_model.config
        adopt_attention(config, self.language_model, requested_attention)
        self.generation_config = self.language_model.generation_config
        self.inputs = FusionInputs(config)
        self.adapter = FusionAdapter(config)
        self.post_init()

    @classmethod
    def can_generate(cls) -> bool:
        """False: the fusion model decodes with its own `generate` (soft tokens, then text), not
        with transformers' GenerationMixin, which remote-code loading would otherwise add and
        configure from this config's `max_new_tokens`, a length per narrative kind."""
        return False

    @classmethod
    def from_base(
        cls,
        language_model: PreTrainedModel,
        tokenizer,
        *,
        num_items: int,
        cf_factors=None,
        content_vectors=None,
        **config_kwargs,
    ) -> FusionForCausalLM:
        """The fusion narrator around a loaded causal LM, with its tables filled: `cf_factors`
        `[num_items, cf_dim]` (trained WALS item factors) and/or `content_vectors`
        `[num_items, content_dim]`, as the signals need. The item norm is measured here; a user
        token with CF signals needs the training users' mean norm, `cf_user_norm` (measured by
        `training/train_fusion.py`): without it the config refuses."""
        embeddings = language_model.get_input_embeddings().weight.detach().float()
        # The LM's own attention, which the new config would otherwise reset on it.
        config_kwargs.setdefault("attn_implementation", language_model.config._attn_implementation)
        config = FusionConfig(
            text_config=language_model.config,
            num_items=num_items,
            prefix_token_id=tokenizer.bos_token_id,
            soft_token_std=float(embeddings.std()),
            **config_kwargs,
        )
        if config.uses_cf:
            if cf_factors is None:
                raise ValueError(f"signals {config.signals!r} need the WALS item factors")
            config.cf_dim = int(cf_factors.shape[1])
            config.cf_item_norm = mean_norm(cf_factors)
        if config.uses_content:
            if content_vectors is None:
                raise ValueError(f"signals {config.signals!r} need the content vectors")
            config.content_dim = int(content_vectors.shape[1])
        model = cls(config, language_model)
        # transformers initialises only the weights from_pretrained finds missing; a new adapter
        # starts from its own scheme (the wrapped LM keeps its weights).
        model._init_weights(model.adapter)
        model.fill_tables(cf_factors, content_vectors)
        return model

    def fill_tables(self, cf_factors=None, content_vectors=None) -> None:
        for name, table in (("cf_factors", cf_factors), ("content_vectors", content_vectors)):
            if table is None or not hasattr(self.inputs, name):
                continue
            buffer = getattr(self.inputs, name)
            table = torch.as_tensor(table)
            if tuple(table.shape) != tuple(buffer.shape):
                raise ValueError(
                    f"{name} of shape {tuple(table.shape)} does not fit this model's "
                    f"{tuple(buffer.shape)}"
                )
            with torch.no_grad():
                buffer.copy_(table.to(buffer.dtype))

    # -- pieces --------------------------------------------------------------------------------

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    @property
    def embed_scale(self) -> torch.Tensor:
        """The factor the LM's embedding layer multiplies token embeddings by (1 for most LMs,
        the square root of the hidden size for Gemma)."""
        layer = self.get_input_embeddings()
        return torch.as_tensor(getattr(layer, "embed_scale", 1.0)).to(layer.weight.dtype)

    def fused_vectors(
        self, item_ids: torch.Tensor, review_vectors: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(`[batch, tokens, input_dim]`, mask `[batch, tokens]`): the fused vector of the user
        token (if any) and of each interaction (`item_ids` `[batch, length]`, -1 pads;
        `review_vectors` `[batch, length, content_dim]`, zero where none)."""
        self._check_items(item_ids, review_vectors)
        dtype = self.adapter.first_layer.weight.dtype
        vectors = self.inputs.interactions(item_ids, dtype, review_vectors)
        mask = item_ids >= 0
        if self.config.user_token:
            user = self.inputs.users(item_ids, dtype, review_vectors)
            vectors = torch.cat([user[:, None], vectors], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        return vectors, mask

    def soft_tokens(
        self, item_ids: torch.Tensor, review_vectors: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(`[batch, tokens, hidden]`, mask): the soft-token block, left-padded, opening with
        the begin-of-sequence token's embedding where the LM has one."""
        vectors, mask = self.fused_vectors(item_ids, review_vectors)
        layer = self.get_input_embeddings()
        tokens = self.adapter(vectors).to(layer.weight.dtype) * self.embed_scale
        prefix = self.config.prefix_token_id
        if prefix is not None:
            start = layer(torch.full_like(item_ids[:, :1], prefix))
            tokens = torch.cat([start, tokens], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        # Pads first, then the real tokens in their order (a stable sort of the mask).
        order = torch.argsort(mask.int(), dim=1, stable=True)
        tokens = tokens.gather(1, order[..., None].expand_as(tokens))
        return tokens, mask.gather(1, order)

    def _check_items(self, item_ids: torch.Tensor, review_vectors=None) -> None:
        if item_ids.dim() != 2:
            raise ValueError(f"item_ids must be [batch, length], got shape {tuple(item_ids.shape)}")
        if review_vectors is not None:
            config = self.config
            if not config.reads_reviews:
                raise ValueError(
                    f"this model reads no reviews (signals {config.signals!r}, use_reviews "
                    f"{config.use_reviews}): pass no review_vectors"
                )
            expected = (*item_ids.shape, config.content_dim)
            if tuple(review_vectors.shape) != expected:
                raise ValueError(
                    f"review_vectors of shape {tuple(review_vectors.shape)}: expected {expected} "
                    "(one content vector per item id)"
                )
        empty = ~(item_ids >= 0).any(dim=1)
        if bool(empty.any()):
            row = int(empty.nonzero()[0, 0])
            raise ValueError(f"row {row} of the batch has no interaction: nothing to write from")
        if bool((item_ids >= self.config.num_items).any()):
            raise ValueError(
                f"item id {int(item_ids.max())} is outside the item vocabulary of "
                f"{self.config.num_items} items"
            )

    def embed(self, input_ids, attention_mask, item_ids, review_vectors=None):
        """(inputs_embeds, attention mask, position ids, soft block width) of the whole
        sequence: the soft-token block, then the text."""
        tokens, soft_mask = self.soft_tokens(item_ids, review_vectors)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeddings = torch.cat([tokens, self.get_input_embeddings()(input_ids)], dim=1)
        mask = torch.cat([soft_mask.to(attention_mask.dtype), attention_mask], dim=1)
        return embeddings, mask, _positions(mask), tokens.shape[1]

    def text_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.get_output_embeddings()(hidden)
        cap = getattr(self.config.text_config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    # -- forward -------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.LongTensor,
        item_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        review_vectors: torch.FloatTensor | None = None,
        return_dict: bool | None = None,
    ) -> FusionOutput:
        """
        input_ids `[batch, text length]`: the text prompt (and, in training, the completion).
        item_ids `[batch, interactions]`: item ids, oldest first, the item to write about last
            (left-padded with -1).
        labels `[batch, text length]`: the completion's tokens, -100 elsewhere.
        review_vectors `[batch, interactions, content_dim]`: with `use_reviews`, the sentence
            embedding of the user's review of each history interaction (zero for none, for the
            target and for pads); None reads the items alone.
        """
        embeddings, mask, positions, width = self.embed(
            input_ids, attention_mask, item_ids, review_vectors
        )
        hidden = (
            self.language_model.get_decoder()(
                inputs_embeds=embeddings, attention_mask=mask, position_ids=positions
            )
        ).last_hidden_state
        if labels is None:
            return FusionOutput(logits=self.text_logits(hidden[:, width:]), hidden_states=hidden)
        # The state before text token t sits at position width + t - 1.
        states = hidden[:, width - 1 : -1]
        scored = labels != IGNORE_INDEX
        if not bool(scored.any()):
            raise ValueError("the labels score no position: every label is -100")
        logits = self.text_logits(states[scored]).float()
        loss = F.cross_entropy(logits, labels[scored])
        return FusionOutput(loss=loss, hidden_states=hidden)

    # -- inference -----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor,
        item_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        *,
        stop_token_ids: list[int],
        max_new_tokens: int = 64,
        streamer=None,
        review_vectors: torch.Tensor | None = None,
    ) -> list[list[int]]:
        """Greedy decoding after each (left-padded) prompt and its soft tokens: the new token
        ids per row, up to (not including) a stop token. A `streamer` (transformers'
        `BaseStreamer`: `put`, `end`) gets each new token of a single prompt as it is chosen."""
        batch = input_ids.shape[0]
        if streamer is not None and batch != 1:
            raise ValueError(f"a streamer follows one prompt, not a batch of {batch}")
        embeddings, mask, positions, _ = self.embed(
            input_ids, attention_mask, item_ids, review_vectors
        )
        next_position = positions[:, -1] + 1
        stops = torch.tensor(sorted(set(stop_token_ids)), device=input_ids.device)
        done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        written: list[list[int]] = [[] for _ in range(batch)]
        cache = None
        for _ in range(max_new_tokens):
            out, cache = run_decoder(
                self.language_model.get_decoder(),
                cache,
                inputs_embeds=embeddings,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
            )
            tokens = self.text_logits(out.last_hidden_state[:, -1]).float().argmax(dim=-1)
            done |= torch.isin(tokens, stops)
            for row in (~done).nonzero()[:, 0].tolist():
                written[row].append(int(tokens[row]))
                if streamer is not None:
                    streamer.put(tokens[row : row + 1].cpu())
            if bool(done.all()):
                break
            embeddings = self.get_input_embeddings()(tokens[:, None])
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = next_position[:, None]
            next_position = next_position + 1
        if streamer is not None:
            streamer.end()
        return written

    # -- analysis ------------------------------------------------------------------------------

    @torch.no_grad()
    def signal_norms(self, item_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(‖W_cf x_cf‖, ‖W_content x_content‖) per item of `item_ids` (`[n]`), through the
        adapter's first layer W = [W_cf | W_content]: the projected CF and content parts whose
        sum (plus the bias) is the soft token of a linear adapter ("Beyond Retrieval",
        section 6). Needs `signals="both"`."""
        if self.config.signals != "both":
            raise ValueError("the CF and content parts exist only in a model with signals 'both'")
        weight = self.adapter.first_layer.weight
        cf, content = self.inputs.parts(item_ids, weight.dtype)
        cf_part = cf @ weight[:, : self.config.cf_dim].T
        content_part = content @ weight[:, self.config.cf_dim :].T
        return cf_part.norm(dim=-1), content_part.norm(dim=-1)


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count real tokens only: 0 at each row's first one."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
