"""What the Amazon reader read, kept and dropped, and why; the error that names a bad line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from regen_dataset.jsonl import LineError

MIN_LENGTH = 5
MAX_LENGTH = 50


class AmazonFormatError(LineError):
    """A line of an Amazon Reviews file that cannot be read; names the file, line and field."""


@dataclass
class AmazonReport:
    """Counts of what was read, kept and dropped, and why.

    Reviews: `review_lines` = `bad_review_lines` + `interactions_without_title`
    + `consecutive_duplicates` + `interactions_over_max` + `interactions_of_short_users`
    + `interactions_of_users_over_max_users` + `interactions_kept`.
    Users: `users_read` = `users_without_titled_items` + `users_too_short`
    + `users_over_max_users` + `users_kept`.
    Metadata: `meta_lines` = `bad_meta_lines` + `meta_unreferenced` + `meta_without_title`
    + `meta_duplicates` + `items_with_title`.
    """

    reviews_file: str = ""
    meta_file: str = ""
    min_length: int = MIN_LENGTH
    max_length: int = MAX_LENGTH
    max_users: int | None = None  # users kept at most (the first ones in output order)
    buckets: int = 0
    # reviews
    review_lines: int = 0
    bad_review_lines: int = 0
    reviews_without_text: int = 0  # not dropped for it: written with text ""
    reviews_without_summary: int = 0  # not dropped for it: written with summary ""
    items_reviewed: int = 0  # distinct ASINs among the reviews
    # metadata
    meta_lines: int = 0
    bad_meta_lines: int = 0
    meta_unreferenced: int = 0  # items no review mentions: not stored
    meta_without_title: int = 0  # no title, or nothing left once HTML is stripped
    meta_duplicates: int = 0  # another line for an item already stored (the first one wins)
    items_with_title: int = 0
    price_ranges: int = 0  # of the items stored: "$10.00 - $20.00", written as 0.0 ...
    prices_unknown: int = 0  # ... and empty, missing or unreadable: 0.0, as the release does
    # sequences
    users_read: int = 0
    interactions_without_title: int = 0  # the item has no titled metadata
    users_without_titled_items: int = 0  # every interaction was dropped for that
    consecutive_duplicates: int = 0  # the same item as the interaction before
    interactions_over_max: int = 0  # older than the last `max_length`
    users_too_short: int = 0  # fewer than `min_length` interactions left
    interactions_of_short_users: int = 0
    users_over_max_users: int = 0  # long enough, but `max_users` were kept before them
    interactions_of_users_over_max_users: int = 0
    users_kept: int = 0
    interactions_kept: int = 0
    items_kept: int = 0
    bad_line_examples: list[str] = field(default_factory=list)
    # working folders that killed runs left behind, removed before this one started
    stale_folders_removed: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def add_bad_line(self, error: AmazonFormatError, kind: str) -> None:
        if kind == "reviews":
            self.bad_review_lines += 1
        else:
            self.bad_meta_lines += 1
        if len(self.bad_line_examples) < 20:
            self.bad_line_examples.append(str(error))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        dropped = (
            f"dropped {self.interactions_without_title:,} interactions whose item has no title, "
            f"{self.consecutive_duplicates:,} consecutive duplicates, "
            f"{self.interactions_over_max:,} beyond the last {self.max_length} of a user, "
            f"{self.users_without_titled_items:,} users without a titled item, and "
            f"{self.users_too_short:,} users with fewer than {self.min_length} interactions "
            f"({self.interactions_of_short_users:,} interactions)"
        )
        if self.max_users is not None:
            dropped += (
                f"; left out {self.users_over_max_users:,} users beyond the first "
                f"{self.max_users:,} (--max-users; "
                f"{self.interactions_of_users_over_max_users:,} interactions)"
            )
        lines = [
            f"kept {self.users_kept:,} users, {self.interactions_kept:,} interactions, "
            f"{self.items_kept:,} items, from {self.review_lines:,} review lines of "
            f"{self.users_read:,} users ({self.reviews_file})",
            dropped,
            f"metadata: {self.items_with_title:,} titled items of {self.items_reviewed:,} "
            f"reviewed, from {self.meta_lines:,} lines ({self.meta_file}); "
            f"{self.meta_unreferenced:,} lines of items never reviewed, "
            f"{self.meta_without_title:,} without a title, {self.meta_duplicates:,} duplicates",
            f"prices written as 0.0: {self.price_ranges:,} ranges, "
            f"{self.prices_unknown:,} missing or unreadable",
        ]
        if self.reviews_without_text or self.reviews_without_summary:
            lines.append(
                f"reviews kept without text: {self.reviews_without_text:,}, "
                f"without summary: {self.reviews_without_summary:,}"
            )
        if self.bad_review_lines or self.bad_meta_lines:
            lines.append(
                f"skipped {self.bad_review_lines:,} bad review lines and "
                f"{self.bad_meta_lines:,} bad metadata lines, e.g. {self.bad_line_examples[0]}"
            )
        if self.stale_folders_removed:
            lines.append(
                f"removed {len(self.stale_folders_removed)} working folder(s) of killed runs: "
                + ", ".join(self.stale_folders_removed)
            )
        return "\n".join(lines)
