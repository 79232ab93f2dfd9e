"""The prediction format every REGEN model writes and the evaluation harness reads.

One JSON object per line, one line per user of the evaluated split:

    {"user_id": "A1B2", "ranked_items": ["B00X...", ...],
     "narratives": {"product_endorsement": "..."}}

- `ranked_items`: item ids, best first, at least `MIN_RANKED` of them, no repeats. Optional, but
  then absent from every line (a narrator alone ranks nothing).
- `narratives`: a generated text per narrative kind the model produces (`schema.NARRATIVE_KINDS`);
  the same kinds on every line.
A file that breaks these rules, or misses or repeats a user, is refused with the line at fault:
a smaller average computed on whatever happened to be there would mislead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from regen_dataset.schema import NARRATIVE_KINDS

MIN_RANKED = 10


class PredictionFormatError(ValueError):
    def __init__(self, path: str, line: int | None, message: str):
        where = f"{path}, line {line}" if line else path
        super().__init__(f"{where}: {message}")


@dataclass
class Predictions:
    path: str
    user_ids: list[str] = field(default_factory=list)
    ranked_items: list[list[str]] | None = None
    narratives: dict[str, list[str]] = field(default_factory=dict)  # kind -> text per user

    def for_users(self, user_ids: list[str]) -> Predictions:
        """The predictions in the order of `user_ids`, which must be exactly this file's users."""
        index = {user_id: row for row, user_id in enumerate(self.user_ids)}
        missing = [user_id for user_id in user_ids if user_id not in index]
        if missing:
            raise PredictionFormatError(
                self.path,
                None,
                f"no prediction for {len(missing)} users of the split, e.g. {missing[:3]}",
            )
        if len(user_ids) != len(self.user_ids):
            extra = sorted(set(self.user_ids) - set(user_ids))
            line = index[extra[0]] + 1
            raise PredictionFormatError(
                self.path,
                line,
                f"user {extra[0]!r} is not in the evaluated split ({len(extra)} such users)",
            )
        order = [index[user_id] for user_id in user_ids]
        return Predictions(
            path=self.path,
            user_ids=list(user_ids),
            ranked_items=None
            if self.ranked_items is None
            else [self.ranked_items[r] for r in order],
            narratives={kind: [texts[r] for r in order] for kind, texts in self.narratives.items()},
        )


def read_predictions(path: str | os.PathLike) -> Predictions:
    path = os.fspath(path)
    out = Predictions(path=path)
    seen: dict[str, int] = {}
    kinds: tuple[str, ...] | None = None
    has_ranking: bool | None = None
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise PredictionFormatError(path, number, f"malformed JSON ({error})") from None
            if not isinstance(record, dict):
                raise PredictionFormatError(path, number, "expected a JSON object")
            user_id = record.get("user_id")
            if not isinstance(user_id, str) or not user_id:
                raise PredictionFormatError(
                    path, number, "field user_id: expected a non-empty string"
                )
            if user_id in seen:
                raise PredictionFormatError(
                    path, number, f"user {user_id!r} already predicted on line {seen[user_id]}"
                )
            seen[user_id] = number

            ranked = record.get("ranked_items")
            if has_ranking is None:
                has_ranking = ranked is not None
                out.ranked_items = [] if has_ranking else None
            if (ranked is not None) != has_ranking:
                raise PredictionFormatError(
                    path, number, "field ranked_items: present on some lines only"
                )
            if ranked is not None:
                if not isinstance(ranked, list) or not all(isinstance(i, str) for i in ranked):
                    raise PredictionFormatError(
                        path, number, "field ranked_items: expected a list of item id strings"
                    )
                if len(ranked) < MIN_RANKED:
                    raise PredictionFormatError(
                        path,
                        number,
                        f"field ranked_items: {len(ranked)} items, at least {MIN_RANKED} needed",
                    )
                if len(set(ranked)) != len(ranked):
                    raise PredictionFormatError(
                        path, number, "field ranked_items: an item id is repeated"
                    )
                out.ranked_items.append(ranked)

            narratives = record.get("narratives") or {}
            if not isinstance(narratives, dict):
                raise PredictionFormatError(path, number, "field narratives: expected an object")
            unknown = sorted(set(narratives) - set(NARRATIVE_KINDS))
            if unknown:
                raise PredictionFormatError(
                    path,
                    number,
                    f"field narratives: unknown kind {unknown[0]!r}; "
                    f"expected some of {NARRATIVE_KINDS}",
                )
            line_kinds = tuple(kind for kind in NARRATIVE_KINDS if kind in narratives)
            if kinds is None:
                kinds = line_kinds
                out.narratives = {kind: [] for kind in kinds}
            if line_kinds != kinds:
                raise PredictionFormatError(
                    path,
                    number,
                    f"field narratives: kinds {list(line_kinds)} differ from "
                    f"the first line's {list(kinds)}",
                )
            for kind in kinds:
                if not isinstance(narratives[kind], str):
                    raise PredictionFormatError(
                        path, number, f"field narratives.{kind}: expected a string"
                    )
                out.narratives[kind].append(narratives[kind])
            out.user_ids.append(user_id)
    if not out.user_ids:
        raise PredictionFormatError(path, None, "no predictions in the file")
    if out.ranked_items is None and not out.narratives:
        raise PredictionFormatError(
            path, 1, "neither ranked_items nor narratives: nothing to evaluate"
        )
    return out


def write_predictions(
    path: str | os.PathLike, user_ids, ranked_items=None, narratives=None
) -> None:
    """Write predictions atomically; `narratives` maps kind -> one text per user."""
    path = os.fspath(path)
    narratives = narratives or {}
    partial = f"{path}.partial"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(partial, "w", encoding="utf-8") as handle:
        for row, user_id in enumerate(user_ids):
            record: dict = {"user_id": user_id}
            if ranked_items is not None:
                record["ranked_items"] = list(ranked_items[row])
            if narratives:
                record["narratives"] = {kind: texts[row] for kind, texts in narratives.items()}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(partial, path)
