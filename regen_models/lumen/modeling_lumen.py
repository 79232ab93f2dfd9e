"""LUMEN: a causal LM that reads and writes single-token item ids beside its text.

Data flows through the modules in the order they appear here:

1. `LumenItems`: the item table. Each item of the vocabulary has one learned vector (of the LM's
   hidden size, or of a smaller size and a projection to it: the factorised table). Where the
   input holds the placeholder token, `LumenForCausalLM` puts the item's vector instead of the
   token's embedding, multiplied by the same factor the LM's embedding layer applies to its own
   tokens (Gemma scales token embeddings by the square root of the hidden size inside the
   layer, so an unscaled item would enter the model far quieter than a word).
2. The wrapped causal LM runs on those input embeddings unchanged.
3. Two heads read the last hidden states: the LM's own head over the text vocabulary, and the
   item head over the whole item vocabulary (scores against the item vectors themselves when
   tied, against a table of its own otherwise, plus a bias per item).

A target reads `ID: <switch><item>` then the narrative. The position of the switch token is the
one whose next token is an item: its hidden state is scored against the item vocabulary, and the
loss there is the item cross-entropy; everywhere else in the target it is the text
cross-entropy. Decoding does the same: text until the switch, then one item (argmax or sampled
over the catalog, so only a valid item can come out), whose vector is fed back in as the next
input, then text again: the narrative follows from the item that was emitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.utils import ModelOutput

from regen_models.decoding import adopt_attention, run_decoder
from regen_models.items import ItemVocabularyMixin
from regen_models.lumen.configuration_lumen import ITEM_TOKEN, SWITCH_TOKEN, LumenConfig

IGNORE_INDEX = -100
NO_ITEM = -1  # pads `item_ids`


@dataclass
class LumenOutput(ModelOutput):
    """
    loss: `text_loss + item_loss_weight * item_loss` (with `labels`).
    text_loss: cross-entropy of the target's text tokens; item_loss: cross-entropy over the item
        vocabulary at the positions whose next token is an item.
    logits: text logits. Without `labels`: `[batch, kept positions, vocab]` (`logits_to_keep`).
        With `labels`, only the scored positions are projected and `logits` is None.
    item_logits: with `labels`, `[item positions, num_items]` in the order of the batch; without,
        `[batch, num_items]` for the last position (the next item after a switch token there).
    hidden_states: the LM's last hidden states, `[batch, length, hidden_size]`.
    cache: the LM's KV cache, for decoding (transformers' `past_key_values` before 5.24).
    """

    loss: torch.FloatTensor | None = None
    text_loss: torch.FloatTensor | None = None
    item_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    item_logits: torch.FloatTensor | None = None
    hidden_states: torch.FloatTensor | None = None
    cache: object | None = None


@dataclass
class LumenGeneration:
    """What `generate` wrote for each prompt.

    items `[batch]`: the item index each prompt's decoder emitted (or was given).
    item_scores `[batch]`: the item head's log-probability of that item.
    narrative_ids: per prompt, the text tokens after the item, up to the end token.
    prefix_ids: per prompt, the text tokens before the switch.
    forced_switch `[batch]`: True where the decoder had not switched to the item vocabulary
        within `max_text_before_item` tokens and the switch was forced.
    """

    items: torch.LongTensor
    item_scores: torch.FloatTensor
    narrative_ids: list[list[int]]
    prefix_ids: list[list[int]]
    forced_switch: torch.BoolTensor


class LumenItems(nn.Module):
    """The item table (full or factorised) and the item head."""

    def __init__(self, config: LumenConfig):
        super().__init__()
        hidden, dim = config.hidden_size, config.item_dim
        self.embeddings = nn.Embedding(config.num_items, dim)
        self.projection = nn.Linear(dim, hidden, bias=False) if config.factorised else None
        self.tied = config.tie_item_head
        if not self.tied:
            self.output_embeddings = nn.Embedding(config.num_items, dim)
            self.output_projection = (
                nn.Linear(hidden, dim, bias=False) if config.factorised else None
            )
        self.output_bias = nn.Parameter(torch.zeros(config.num_items))
        self.logit_scale = nn.Parameter(torch.tensor(float(config.item_logit_scale)))

    def input_vectors(self, item_ids: torch.Tensor) -> torch.Tensor:
        """`[..., hidden]`: the vectors of `item_ids` in the LM's hidden space (unscaled)."""
        vectors = self.embeddings(item_ids)
        return vectors if self.projection is None else self.projection(vectors)

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """`[n, num_items]` for hidden states `[n, hidden]`: one matrix product over the catalog
        (in the table's dimension: a factorised table is scored without expanding it)."""
        # The table may be float32 beside a bfloat16 LM (trained in float32, see train_lumen).
        hidden = hidden.to(self.embeddings.weight.dtype)
        if self.tied:
            query = hidden if self.projection is None else hidden @ self.projection.weight
            table = self.embeddings.weight
        else:
            projection = self.output_projection
            query = hidden if projection is None else projection(hidden)
            table = self.output_embeddings.weight
        return self.logit_scale * (query @ table.T) + self.output_bias


class SwitchTokenRows(nn.Module):
    """Trainable copies of the switch token's rows in the LM's input embeddings and text head,
    read in their place while the LM is frozen (LoRA): the switch is a token LUMEN added, which
    the LM has to learn to read and to write. One row serves both sides when the LM ties its head
    to its embeddings. `LumenForCausalLM.merge_switch_rows` writes them back."""

    def __init__(self, language_model: PreTrainedModel, token_id: int):
        super().__init__()
        self.token_id = token_id
        embeddings = language_model.get_input_embeddings().weight
        head = language_model.get_output_embeddings().weight
        self.input_row = nn.Parameter(embeddings[token_id].detach().clone())
        self.tied = head is embeddings
        self.output_row = None if self.tied else nn.Parameter(head[token_id].detach().clone())

    def head_row(self) -> nn.Parameter:
        return self.input_row if self.tied else self.output_row


class LumenPreTrainedModel(ItemVocabularyMixin, PreTrainedModel):
    config_class = LumenConfig
    base_model_prefix = "lumen"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        # Only LUMEN's own modules: the wrapped LM initialises itself (or is loaded).
        if not isinstance(module, LumenItems):
            return
        std = self.config.item_initializer_range
        nn.init.normal_(module.embeddings.weight, mean=0.0, std=std)
        nn.init.zeros_(module.output_bias)
        nn.init.constant_(module.logit_scale, self.config.item_logit_scale)
        dim = self.config.item_dim
        if module.projection is not None:
            nn.init.normal_(module.projection.weight, mean=0.0, std=dim**-0.5)
        if not module.tied:
            nn.init.normal_(module.output_embeddings.weight, mean=0.0, std=std)
            if module.output_projection is not None:
                hidden = self.config.hidden_size
                nn.init.normal_(module.output_projection.weight, mean=0.0, std=hidden**-0.5)


class LumenForCausalLM(LumenPreTrainedModel):
    def __init__(self, config: LumenConfig, language_model: PreTrainedModel | None = None):
        # What the caller asked for, before transformers gives this class its default.
        requested_attention = config._attn_implementation or (
            language_model.config._attn_implementation if language_model is not None else None
        )
        super().__init__(config)
        if config.item_token_id is None or config.switch_token_id is None:
            raise ValueError("a LUMEN config needs item_token_id and switch_token_id")
        self.language_model = language_model or AutoModelForCausalLM.from_config(config.text_config)
        # One config object for the LM, so that what is set on this config (the attention
        # implementation, say) reaches the LM's layers.
        config.text_config = self.language_model.config
        adopt_attention(config, self.language_model, requested_attention)
        # The LM's stop tokens; LUMEN decodes with its own `generate`.
        self.generation_config = self.language_model.generation_config
        self.items = LumenItems(config)
        self.switch_rows: SwitchTokenRows | None = None
        if self.language_model.config.get_text_config().tie_word_embeddings:
            # A tied head is saved once, as the embeddings: the Trainer reloading the best
            # checkpoint would call it missing, where it only needs tying again.
            head = self.language_model.get_output_embeddings()
            name = next(n for n, m in self.language_model.named_modules() if m is head)
            self._keys_to_ignore_on_save = [f"language_model.{name}.weight"]
        self.post_init()

    @classmethod
    def can_generate(cls) -> bool:
        """False: LUMEN decodes with its own `generate` (text, one item, text), not with
        transformers' GenerationMixin. Loaded as remote code, transformers would otherwise add
        that mixin for the custom `generate` and derive a GenerationConfig from this config,
        whose `max_new_tokens` is a length per narrative kind."""
        return False

    @classmethod
    def from_base(
        cls, language_model: PreTrainedModel, tokenizer, num_items: int, **config_kwargs
    ) -> LumenForCausalLM:
        """LUMEN around a loaded causal LM, whose tokenizer has the LUMEN tokens
        (`regen_models.lumen.data.add_item_tokens`): the LM's embeddings grow to the tokenizer,
        the item table starts on the spread of the LM's token embeddings."""
        known = language_model.get_input_embeddings().num_embeddings
        if len(tokenizer) > known:
            language_model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            _draw_like_the_known_rows(language_model.get_input_embeddings().weight, known)
        spread = float(language_model.get_input_embeddings().weight.detach().float().std())
        # The LM's own attention, which the new config would otherwise reset on it.
        config_kwargs.setdefault("attn_implementation", language_model.config._attn_implementation)
        config = LumenConfig(
            text_config=language_model.config,
            num_items=num_items,
            item_token_id=tokenizer.convert_tokens_to_ids(ITEM_TOKEN),
            switch_token_id=tokenizer.convert_tokens_to_ids(SWITCH_TOKEN),
            item_initializer_range=spread,
            item_logit_scale=1.0 / max(_hidden_norm(language_model, tokenizer) * spread, 1e-6),
            **config_kwargs,
        )
        return cls(config, language_model)

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

    def train_switch_rows(self) -> SwitchTokenRows:
        """Give the switch token trainable rows of its own (for training with the LM frozen)."""
        self.switch_rows = SwitchTokenRows(self.language_model, self.config.switch_token_id)
        return self.switch_rows

    @torch.no_grad()
    def merge_switch_rows(self) -> None:
        """Write the trained switch rows into the LM's embeddings and head, and drop them."""
        rows = self.switch_rows
        if rows is None:
            return
        token = rows.token_id
        embeddings = self.get_input_embeddings().weight
        embeddings[token] = rows.input_row.to(embeddings.dtype)
        if not rows.tied:
            head = self.get_output_embeddings().weight
            head[token] = rows.output_row.to(head.dtype)
        self.switch_rows = None

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The LM's embeddings of text tokens (the switch token's trainable row where it has
        one)."""
        embeddings = self.get_input_embeddings()(input_ids)
        rows = self.switch_rows
        if rows is None:
            return embeddings
        row = (rows.input_row * self.embed_scale.to(rows.input_row.dtype)).to(embeddings.dtype)
        is_switch = (input_ids == rows.token_id).unsqueeze(-1)
        return torch.where(is_switch, row, embeddings)

    def embed(self, input_ids: torch.Tensor, item_ids: torch.Tensor | None) -> torch.Tensor:
        """Input embeddings: the LM's token embeddings, with the vectors of `item_ids` (in order,
        `NO_ITEM` pads) at the placeholder positions, scaled as the LM scales its tokens."""
        embeddings = self.embed_tokens(input_ids)
        is_item = input_ids == self.config.item_token_id
        given = item_ids >= 0 if item_ids is not None else None
        placeholders = is_item.sum(dim=1)
        ids_per_row = given.sum(dim=1) if given is not None else torch.zeros_like(placeholders)
        if not torch.equal(placeholders, ids_per_row):
            row = int((placeholders != ids_per_row).nonzero()[0, 0])
            raise ValueError(
                f"row {row} of the batch holds {int(placeholders[row])} item placeholders but "
                f"{int(ids_per_row[row])} item ids: every placeholder needs exactly one item"
            )
        if given is None or not bool(given.any()):
            return embeddings
        ids = item_ids[given]
        if bool((ids >= self.config.num_items).any()):
            raise ValueError(
                f"item id {int(ids.max())} is outside the item vocabulary of "
                f"{self.config.num_items} items"
            )
        vectors = self.items.input_vectors(ids).to(embeddings.dtype) * self.embed_scale
        embeddings = embeddings.clone()
        embeddings[is_item] = vectors
        return embeddings

    def text_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        head = self.get_output_embeddings()
        logits = head(hidden)
        rows = self.switch_rows
        if rows is not None:
            row = rows.head_row()
            column = hidden.to(row.dtype) @ row
            if getattr(head, "bias", None) is not None:
                column = column + head.bias[rows.token_id]
            index = torch.tensor([rows.token_id], device=logits.device)
            logits = logits.index_copy(-1, index, column.unsqueeze(-1).to(logits.dtype))
        cap = getattr(self.config.text_config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.items.scores(hidden)

    # -- forward -------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        item_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        inputs_embeds: torch.FloatTensor | None = None,
        return_dict: bool | None = None,
    ) -> LumenOutput:
        """
        input_ids `[batch, length]`: text tokens with the placeholder where items go.
        item_ids `[batch, max items]`: the item of each placeholder, in order (`NO_ITEM` pads).
        labels `[batch, length]`: the target's tokens (`-100` on the prompt and padding). A
            label equal to the placeholder marks the target item: the item loss is taken at the
            position before it (the switch), against the item id `item_ids` gives there.
        logits_to_keep: without labels, the last positions whose text logits are returned
            (0: all of them).
        inputs_embeds: embeddings already built by `embed` (decoding passes them).
        """
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, item_ids)
        outputs, cache = run_decoder(
            self.language_model.get_decoder(),
            cache,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
        )
        hidden = outputs.last_hidden_state
        if labels is None:
            kept = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
            return LumenOutput(
                logits=self.text_logits(kept),
                item_logits=self.item_logits(hidden[:, -1]),
                hidden_states=hidden,
                cache=cache,
            )
        return self._joint_loss(hidden, input_ids, item_ids, labels)

    def _joint_loss(self, hidden, input_ids, item_ids, labels) -> LumenOutput:
        config = self.config
        next_labels = labels[:, 1:]
        states = hidden[:, :-1]
        is_item_next = next_labels == config.item_token_id
        is_text_next = (next_labels != IGNORE_INDEX) & ~is_item_next

        text_loss = item_loss = item_logits = None
        if bool(is_text_next.any()):
            logits = self.text_logits(states[is_text_next])
            text_loss = F.cross_entropy(logits.float(), next_labels[is_text_next])
        if bool(is_item_next.any()):
            # The item of each scored placeholder: placeholders are numbered in order per row.
            is_item = input_ids == config.item_token_id
            order = is_item.long().cumsum(dim=1) - 1
            targets = item_ids.gather(1, order.clamp(min=0))[:, 1:][is_item_next]
            if bool((targets < 0).any()):
                raise ValueError("a target item placeholder has no item id")
            item_logits = self.item_logits(states[is_item_next])
            item_loss = F.cross_entropy(item_logits.float(), targets)
        if text_loss is None and item_loss is None:
            raise ValueError("the labels score no position: every label is -100")
        loss = text_loss if item_loss is None else item_loss * config.item_loss_weight
        if text_loss is not None and item_loss is not None:
            loss = text_loss + config.item_loss_weight * item_loss
        return LumenOutput(
            loss=loss,
            text_loss=None if text_loss is None else text_loss.detach(),
            item_loss=None if item_loss is None else item_loss.detach(),
            item_logits=item_logits,
            hidden_states=hidden,
        )

    # -- inference -----------------------------------------------------------------------------

    @torch.no_grad()
    def recommend(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        item_ids: torch.LongTensor | None = None,
        top_k: int = 10,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, item indices) of the `top_k` best items, from one forward pass over prompts
        that end with the switch token (left-padded): the whole catalog is scored at once."""
        if not bool((input_ids[:, -1] == self.config.switch_token_id).all()):
            raise ValueError("recommend() needs inputs that end with the switch token")
        logits = self.score_items(input_ids, attention_mask, item_ids)
        return torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1)

    @torch.no_grad()
    def score_items(self, input_ids, attention_mask=None, item_ids=None) -> torch.Tensor:
        """`[batch, num_items]`: the item head at the last position (one forward pass)."""
        position_ids = _positions(attention_mask) if attention_mask is not None else None
        embeddings = self.embed(input_ids, item_ids)
        hidden = self.language_model.get_decoder()(
            inputs_embeds=embeddings,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state
        return self.item_logits(hidden[:, -1])

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        item_ids: torch.LongTensor | None = None,
        *,
        stop_token_ids: list[int],
        max_new_tokens: int = 64,
        max_text_before_item: int = 8,
        items: torch.LongTensor | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        streamer=None,
    ) -> LumenGeneration:
        """Decode each (left-padded) prompt: text until the switch token, then one item of the
        catalog, fed back as the next input, then the narrative about it until a stop token.

        `items` `[batch]` gives the item to write about instead of letting the model pick it
        (the narrative is then about that item). Greedy unless `do_sample` (`temperature`,
        `top_k` apply to the text and to the item). The text head never emits the placeholder,
        nor a stop token before the item, and the switch only once. A `streamer` (transformers'
        `BaseStreamer`: `put`, `end`) gets each narrative token of a single prompt as it is
        chosen (not the text before the item).
        """
        config = self.config
        batch = input_ids.shape[0]
        if streamer is not None and batch != 1:
            raise ValueError(f"a streamer follows one prompt, not a batch of {batch}")
        device = input_ids.device
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeddings = self.embed(input_ids, item_ids)
        positions = _positions(attention_mask)
        next_position = positions[:, -1] + 1
        state = torch.zeros(batch, dtype=torch.long, device=device)  # 0 text, 1 item due, 2 after
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        forced = torch.zeros(batch, dtype=torch.bool, device=device)
        chosen = torch.full((batch,), NO_ITEM, dtype=torch.long, device=device)
        chosen_scores = torch.zeros(batch, device=device)
        prefix = [[] for _ in range(batch)]
        narrative = [[] for _ in range(batch)]
        stops = torch.tensor(sorted(set(stop_token_ids)), device=device)
        cache = None
        mask = attention_mask
        for _ in range(max_text_before_item + max_new_tokens + 3):  # text, switch, item, stop
            out, cache = run_decoder(
                self.language_model.get_decoder(),
                cache,
                inputs_embeds=embeddings,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
            )
            hidden = out.last_hidden_state[:, -1]
            text_logits = self.text_logits(hidden).float()
            text_logits[:, config.item_token_id] = float("-inf")
            text_logits[state == 2, config.switch_token_id] = float("-inf")
            if len(stops):  # no end before the item: the target always names one
                text_logits[(state == 0).nonzero()[:, :1], stops[None]] = float("-inf")
            tokens = _pick(text_logits, do_sample, temperature, top_k, generator)
            late = (state == 0) & torch.tensor(
                [len(p) >= max_text_before_item for p in prefix], device=device
            )
            tokens = torch.where(late, torch.full_like(tokens, config.switch_token_id), tokens)
            forced |= late
            next_embeddings = self.embed_tokens(tokens)

            item_due = state == 1
            if bool(item_due.any()):
                item_log_probs = torch.log_softmax(self.item_logits(hidden[item_due]).float(), -1)
                picked = _pick(item_log_probs, do_sample, temperature, top_k, generator)
                if items is not None:
                    picked = items.to(device)[item_due]
                chosen[item_due] = picked
                chosen_scores[item_due] = item_log_probs.gather(1, picked[:, None])[:, 0]
                vectors = self.items.input_vectors(picked).to(next_embeddings.dtype)
                next_embeddings[item_due] = vectors * self.embed_scale
                tokens = torch.where(item_due, config.item_token_id, tokens)

            for row in range(batch):
                if done[row]:
                    continue
                if state[row] == 0:
                    if tokens[row] == config.switch_token_id:
                        state[row] = 1
                    else:
                        prefix[row].append(int(tokens[row]))
                elif state[row] == 1:
                    state[row] = 2
                elif bool((stops == tokens[row]).any()) or len(narrative[row]) >= max_new_tokens:
                    done[row] = True
                else:
                    narrative[row].append(int(tokens[row]))
                    if streamer is not None:
                        streamer.put(tokens[row : row + 1].cpu())
            if bool(done.all()):
                break
            embeddings = next_embeddings[:, None]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = next_position[:, None]
            next_position = next_position + 1
        if streamer is not None:
            streamer.end()
        return LumenGeneration(chosen, chosen_scores, narrative, prefix, forced)


def _draw_like_the_known_rows(weight: torch.Tensor, known: int) -> None:
    """Rows `known:` of an embedding matrix drawn from the mean and spread of the rows before
    them: the initializer's small random rows would start the switch token far from any token
    the LM writes (on the embedded Gemma, at half their median norm)."""
    with torch.no_grad():
        rows = weight[:known].float()
        new = rows.mean(0) + rows.std(0) * torch.randn(
            len(weight) - known, weight.shape[1], device=rows.device
        )
        weight[known:] = new.to(weight.dtype)


@torch.no_grad()
def _hidden_norm(language_model, tokenizer) -> float:
    """The mean length of the LM's last hidden states on a short text: what an item vector of
    spread s is multiplied by when it is scored (a score's spread is length x s)."""
    probe = tokenizer("A shopper's purchases, oldest first.", return_tensors="pt")["input_ids"]
    device = language_model.get_input_embeddings().weight.device
    hidden = language_model.get_decoder()(input_ids=probe.to(device)).last_hidden_state
    return float(hidden.float().norm(dim=-1).mean())


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of left-padded rows: 0 at each row's first real token."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def _pick(logits, do_sample: bool, temperature: float, top_k: int | None, generator):
    if not do_sample:
        return logits.argmax(dim=-1)
    logits = logits / max(temperature, 1e-6)
    if top_k:
        threshold = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
