"""The prediction format every REGEN model writes and the evaluation harness reads.

One JSON object per line (UTF-8; the file may be gzipped), one line per user of the evaluated
split:

    {"user_id": "A1B2", "config": "office", "split": "test", "ranked_items": ["B00X...", ...],
     "narratives": {"product_endorsement": "..."}}

- `config`, `split`: the dataset config and split the predictions were made for. Optional, but
  then absent from every line; where present, the same on every line, and `regen eval` refuses a
  file scored against another config or split (under leave-one-out every user is in every split,
  and a config and its `_no_critique` twin share users and catalog: nothing else would tell).
- `ranked_items`: item ids of the category's catalog, best first, at least `MIN_RANKED` of them,
  no repeats. Optional, but then absent from every line (a narrator alone ranks nothing).
- `narratives`: a generated text per narrative kind the model produces (`schema.NARRATIVE_KINDS`);
  the same kinds on every line.
- `narrated_item`: which item the narratives are about, `"top_ranked"` (the model's own first
  recommendation) or `"target"` (the held-out item, given to the model: an upper bound for a
  system that must also find it). Optional, the same on every line; `regen eval` notes the
  second under its table.
A file that breaks these rules, repeats a user, names a user that is not in the evaluated split,
misses one, or ranks an item that is not in the catalog (a file made for another category) is
refused with the line at fault: a smaller average computed on whatever happened to be there, or
zeros for a file scored against the wrong catalog, would mislead.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field

from regen_dataset.files import atomic_open, is_gzip
from regen_dataset.schema import NARRATIVE_KINDS

MIN_RANKED = 10
NARRATED_ITEMS = ("top_ranked", "target")
# What a file says about all of its lines: the same on every line where present.
FILE_FIELDS = ("config", "split", "narrated_item")


class PredictionFormatError(ValueError):
    def __init__(self, path: str, line: int | None, message: str):
        self.line, self.problem = line, message
        where = f"{path}, line {line}" if line else path
        super().__init__(f"{where}: {message}")


@dataclass
class Predictions:
    path: str
    user_ids: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the file's line number of each user
    ranked_items: list[list[str]] | None = None
    narratives: dict[str, list[str]] = field(default_factory=dict)  # kind -> text per user
    config: str | None = None  # what the file says it was made for, when it says so
    split: str | None = None
    narrated_item: str | None = None  # one of NARRATED_ITEMS, when the file says

    def check_made_for(self, config: str, split: str) -> None:
        """Refuse a file that says it was made for another config or split than the one it is
        about to be scored against."""
        for name, theirs, ours in (("config", self.config, config), ("split", self.split, split)):
            if theirs is not None and theirs != ours:
                raise PredictionFormatError(
                    self.path,
                    self.lines[0],
                    f"field {name}: the file was made for {self.config or config} "
                    f"{self.split or split}, not {config} {split} (`regen predict "
                    f"--dataset_config {config} --split {split}` writes one for it)",
                )

    def for_users(
        self, user_ids: list[str], where: str = "the evaluated split", first: int | None = None
    ) -> Predictions:
        """The predictions in the order of `user_ids`, which must be exactly this file's users;
        with `first`, those of the first `first` users, which the file must all hold (it may hold
        other users of `user_ids` too: they are not returned).

        `where` names the split in messages ("office test"). A user that is not in it is reported
        at its line first, so that a user swapped for another is not reported as missing only.
        """
        expected = set(user_ids)
        unknown = [row for row, user_id in enumerate(self.user_ids) if user_id not in expected]
        if unknown:
            first = unknown[0]
            raise PredictionFormatError(
                self.path,
                self.lines[first],
                f"user {self.user_ids[first]!r} is not in {where}"
                + (f" ({len(unknown)} such users in the file)" if len(unknown) > 1 else ""),
            )
        index = {user_id: row for row, user_id in enumerate(self.user_ids)}
        if first is not None:
            user_ids, where = user_ids[:first], f"the first {first} users of {where}"
        missing = [user_id for user_id in user_ids if user_id not in index]
        if missing:
            count = len(self.user_ids)
            prefix = first is None and list(self.user_ids) == list(user_ids[:count])
            raise PredictionFormatError(
                self.path,
                None,
                f"no prediction for {len(missing)} users of {where}, e.g. {missing[:3]}"
                + (
                    f"; the file holds the first {count} users (`regen predict --limit "
                    f"{count}`): score them with `regen eval --first {count}`"
                    if prefix
                    else ""
                ),
            )
        order = [index[user_id] for user_id in user_ids]
        return Predictions(
            path=self.path,
            user_ids=list(user_ids),
            lines=[self.lines[r] for r in order],
            ranked_items=None
            if self.ranked_items is None
            else [self.ranked_items[r] for r in order],
            narratives={kind: [texts[r] for r in order] for kind, texts in self.narratives.items()},
            config=self.config,
            split=self.split,
            narrated_item=self.narrated_item,
        )

    def check_catalog(self, item_ids: Collection[str], category: str) -> None:
        """Refuse a ranked item that is not in the catalog, at its line.

        When most ranked items are unknown, the message says that the file looks made for another
        category: scored here, it would get zeros that say nothing about the model.
        """
        if self.ranked_items is None:
            return
        known = item_ids if isinstance(item_ids, set | frozenset) else set(item_ids)
        first: tuple[int, int, str] | None = None  # line, position, item
        unknown = total = 0
        for line, ranked in zip(self.lines, self.ranked_items, strict=True):
            total += len(ranked)
            for position, item in enumerate(ranked, start=1):
                if item not in known:
                    unknown += 1
                    if first is None:
                        first = (line, position, item)
        if first is None:
            return
        line, position, item = first
        message = (
            f"field ranked_items: item {item!r} (position {position}) is not in the "
            f"{category} catalog of {len(known):,} items"
        )
        if 2 * unknown > total:
            message += (
                f"; {unknown:,} of the file's {total:,} ranked items are not: "
                f"the file looks made for another category"
            )
        elif unknown > 1:
            message += f" ({unknown:,} such items in the file)"
        raise PredictionFormatError(self.path, line, message)


def read_predictions(path: str | os.PathLike) -> Predictions:
    """A prediction file (UTF-8, optionally gzipped), checked line by line."""
    path = os.fspath(path)
    with gzip.open(path, "rb") if is_gzip(path) else open(path, "rb") as handle:
        return _parse(path, _decoded(path, handle))


def _decoded(path: str, handle) -> Iterator[tuple[int, str]]:
    number = 0
    lines = iter(handle)
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except (EOFError, OSError, zlib.error) as error:  # a gzip file cut short or damaged
            raise PredictionFormatError(
                path, number + 1, f"the file is damaged or incomplete ({error})"
            ) from None
        number += 1
        try:
            yield number, line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise PredictionFormatError(path, number, f"not UTF-8 text ({error})") from None


def _parse(path: str, lines: Iterable[tuple[int, str]]) -> Predictions:
    """The predictions of (line number, text) pairs; what breaks a rule raises at its line."""
    out = Predictions(path=path)
    seen: dict[str, int] = {}
    kinds: tuple[str, ...] | None = None
    has_ranking: bool | None = None
    made_for: dict[str, str | None] | None = None  # the FILE_FIELDS of the first line
    for number, line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_object_without_repeated_keys)
        except ValueError as error:
            raise PredictionFormatError(path, number, f"malformed JSON ({error})") from None
        if not isinstance(record, dict):
            raise PredictionFormatError(path, number, "expected a JSON object")
        user_id = record.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise PredictionFormatError(path, number, "field user_id: expected a non-empty string")
        if user_id in seen:
            raise PredictionFormatError(
                path, number, f"user {user_id!r} already predicted on line {seen[user_id]}"
            )
        seen[user_id] = number

        line_made_for = {name: record.get(name) for name in FILE_FIELDS}
        for name, value in line_made_for.items():
            if value is not None and (not isinstance(value, str) or not value):
                raise PredictionFormatError(
                    path, number, f"field {name}: expected a non-empty string"
                )
        narrated = line_made_for["narrated_item"]
        if narrated is not None and narrated not in NARRATED_ITEMS:
            raise PredictionFormatError(
                path, number, f"field narrated_item: {narrated!r}, expected one of {NARRATED_ITEMS}"
            )
        if made_for is None:
            made_for = line_made_for
            out.config, out.split, out.narrated_item = (made_for[n] for n in FILE_FIELDS)
        elif line_made_for != made_for:
            name = next(n for n in made_for if line_made_for[n] != made_for[n])
            raise PredictionFormatError(
                path,
                number,
                f"field {name}: {line_made_for[name]!r} here, {made_for[name]!r} on the first "
                f"line: a file says the same {name} on every line",
            )

        ranked = record.get("ranked_items")
        if has_ranking is None:
            has_ranking, first_line = ranked is not None, number
            out.ranked_items = [] if has_ranking else None
        if (ranked is not None) != has_ranking:
            raise PredictionFormatError(
                path,
                number,
                f"field ranked_items: {'present' if ranked is not None else 'absent'} here, "
                f"{'present' if has_ranking else 'absent'} on line {first_line}: a file ranks "
                "items on every line or on none",
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
                repeated = _first_repeat(ranked)
                raise PredictionFormatError(
                    path,
                    number,
                    f"field ranked_items: an item id is repeated ({repeated!r}); "
                    "a ranking lists each item once",
                )
            out.ranked_items.append(ranked)

        narratives = record.get("narratives")
        if narratives is None:
            narratives = {}
        elif not isinstance(narratives, dict):
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
        out.lines.append(number)

    if not out.user_ids:
        raise PredictionFormatError(path, None, "no predictions in the file")
    if out.ranked_items is None and not out.narratives:
        raise PredictionFormatError(
            path, 1, "neither ranked_items nor narratives: nothing to evaluate"
        )
    return out


def _object_without_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object; a key given twice (where `json` would keep the last silently) is refused."""
    record = dict(pairs)
    if len(record) != len(pairs):
        raise ValueError(f"key {_first_repeat([key for key, _ in pairs])!r} given twice")
    return record


def _first_repeat(items: list[str]) -> str:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    raise ValueError("no repeated item")


def write_predictions(
    path: str | os.PathLike,
    user_ids,
    ranked_items=None,
    narratives=None,
    *,
    config: str | None = None,
    split: str | None = None,
    narrated_item: str | None = None,
) -> None:
    """Write predictions atomically; `narratives` maps kind -> one text per user; `config` and
    `split` (the dataset config and split they were made for) and `narrated_item` (which item
    the narratives are about, one of `NARRATED_ITEMS`) go on every line when given.

    What `read_predictions` would refuse is refused here, before anything is written (the lines
    go through the reader's checks): a column of another length than `user_ids`, a repeated
    user, a ranking shorter than `MIN_RANKED` or with a repeated item, a text that is no string,
    an unknown narrative kind.
    """
    user_ids = list(user_ids)
    narratives = narratives or {}
    columns = {"narratives." + kind: texts for kind, texts in narratives.items()}
    if ranked_items is not None:
        columns["ranked_items"] = ranked_items
    for name, column in columns.items():
        if len(column) != len(user_ids):
            raise ValueError(f"{name}: {len(column)} entries for {len(user_ids)} users")
    lines = []
    for row, user_id in enumerate(user_ids):
        record: dict = {"user_id": user_id}
        if config is not None:
            record["config"] = config
        if split is not None:
            record["split"] = split
        if narrated_item is not None:
            record["narrated_item"] = narrated_item
        if ranked_items is not None:
            record["ranked_items"] = list(ranked_items[row])
        if narratives:
            record["narratives"] = {kind: texts[row] for kind, texts in narratives.items()}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            line.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate, say
            raise ValueError(
                f"{os.fspath(path)} not written: user {user_id!r}: a text is not valid Unicode "
                f"({error.reason} at character {error.start})"
            ) from None
        lines.append(line)
    try:
        _parse(os.fspath(path), enumerate(lines, start=1))
    except PredictionFormatError as error:
        user = f"user {user_ids[error.line - 1]!r}: " if error.line else ""
        raise ValueError(f"{os.fspath(path)} not written: {user}{error.problem}") from None
    with atomic_open(path) as handle:
        handle.writelines(lines)
