"""The hybrid system of the REGEN paper (section 4.2.1): FLARE ranks the catalog, a LoRA-tuned
narrator writes about an item.

    hybrid = HybridSystem.from_pretrained("checkpoints/flare-office", "checkpoints/narrator-office")
    outputs = hybrid(rows, kinds=["purchase_reason"], top_k=10)
    outputs[0].item_ids, outputs[0].narratives["purchase_reason"]

By default the narrator writes about FLARE's top item: what a deployed system would say. With
`narrate_target=True` it writes about the true next item instead, the setting of the paper's
tables (an upper bound on the narratives, since the recommendation is then always right).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from regen_dataset.schema import config_category
from regen_models.flare.ranking import RANKING_BATCH, FlareRanker
from regen_models.narrator import Narrator
from regen_models.prompts import ItemTexts, PromptStats, build_prompt
from regen_models.rows import check_row_collection


@dataclass
class HybridOutput:
    user_id: str
    item_ids: list[str]  # the ranking, best first
    scores: list[float]
    narrated_item: str  # the item the narratives are about
    narratives: dict[str, str] = field(default_factory=dict)  # kind -> text


class HybridSystem:
    def __init__(self, ranker: FlareRanker, narrator: Narrator):
        ranked_category = ranker.vocabulary.category
        narrated = narrator.config.dataset_config
        if narrated and config_category(narrated) != ranked_category:
            raise ValueError(
                f"the FLARE checkpoint ranks the {ranked_category} catalog, the narrator was "
                f"trained on {narrated}: pair models of one category"
            )
        self.ranker = ranker
        self.narrator = narrator
        self.prompt_stats = PromptStats()

    @classmethod
    def from_pretrained(
        cls,
        flare_dir: str | os.PathLike,
        narrator_dir: str | os.PathLike,
        base: str | None = None,
        *,
        device: str | None = None,
    ) -> HybridSystem:
        return cls(
            FlareRanker.from_pretrained(flare_dir, device=device),
            Narrator.from_pretrained(narrator_dir, base, device=device),
        )

    def __call__(
        self,
        rows: Sequence[Mapping],
        *,
        kinds: Sequence[str] | None = None,
        top_k: int = 10,
        narrate_target: bool = False,
        with_critiques: bool | None = None,
        batch_size: int = 8,
        ranking_batch_size: int = RANKING_BATCH,
        max_new_tokens: int | None = None,
        progress: bool = False,
    ) -> list[HybridOutput]:
        """Rank, then write each kind of narrative about the top item (or the target).

        `kinds` defaults to every kind the narrator was trained for; one it was not trained for is
        an error. `with_critiques=False` (a `_no_critique` config) keeps every critique out of
        the ranking and the prompts; by default each part does as it was trained (FLARE's
        `use_critiques`, the narrator's `with_critiques`). Prompts longer than the narrator's
        budget lose their oldest purchases; `self.prompt_stats` counts every cut. FLARE ranks
        `ranking_batch_size` rows at once, the narrator writes for `batch_size`. `progress`: a
        bar over the rows for the ranking and for each kind.
        """
        check_row_collection(rows)
        if isinstance(kinds, str):
            kinds = [kinds]
        kinds = list(kinds or self.narrator.kinds)
        for kind in kinds:
            self.narrator.max_new_tokens(kind)  # an untrained kind fails here, before any work
        ranked = self.ranker.rank(
            rows,
            top_k=top_k,
            with_critiques=with_critiques is not False,  # FLARE drops them if untrained on them
            batch_size=ranking_batch_size,
            progress=progress,
        )
        if with_critiques is None:
            with_critiques = self.narrator.with_critiques
        items = [
            self._item_to_narrate(row, ranking.item_ids[0], narrate_target)
            for row, ranking in zip(rows, ranked, strict=True)
        ]
        outputs = [
            HybridOutput(row["user_id"], ranking.item_ids, ranking.scores, item.item_id)
            for row, ranking, item in zip(rows, ranked, items, strict=True)
        ]
        count = self.narrator.count_prompt_tokens()
        for kind in kinds:
            prompts = []
            for row, item in zip(rows, items, strict=True):
                prompt = build_prompt(
                    row["history"],
                    item,
                    kind,
                    critique=row.get("critique"),
                    with_critiques=with_critiques,
                    user_id=row["user_id"],
                    count_tokens=count,
                    max_tokens=self.narrator.max_prompt_tokens,
                )
                self.prompt_stats.add(prompt)
                prompts.append(prompt.text)
            texts = self.narrator.generate(
                prompts,
                kind=kind,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                progress=progress,
            )
            for output, text in zip(outputs, texts, strict=True):
                output.narratives[kind] = text
        return outputs

    def _item_to_narrate(self, row: Mapping, top_item: str, narrate_target: bool) -> ItemTexts:
        if not narrate_target:
            return ItemTexts.from_vocabulary(self.ranker.vocabulary, top_item)
        target = row.get("target") or {}
        if not target.get("item_id"):
            raise ValueError(f"user {row['user_id']}: narrate_target needs the row's target item")
        return ItemTexts.from_mapping(target)
