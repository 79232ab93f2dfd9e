"""Read raw Amazon Reviews 2018 files (reviews + metadata) into REGEN user sequences.

REGEN starts from CALRec-preprocessed Amazon Reviews 2018 (section 3.2.1 of "REGEN: A Dataset
and Benchmarks with Natural Language Critiques and Narratives", arXiv:2503.11924): reviews are
grouped by user and sorted by time (ties keep the file's line order); interactions whose item has
no titled metadata are dropped, then consecutive duplicates (the same ASIN twice in a row); the last
`max_length` (50) interactions are kept and users with fewer than `min_length` (5) are dropped.
Every filter is counted in an `AmazonReport`: nothing is dropped without a number beside it.
Items are not filtered: to match the paper's data, read the 5-core review file (e.g.
`Office_Products_5.json.gz`, whose catalog of 27,887 Office items is the paper's), not the full
one.

The output is Google's release format (`reviewer_id`, `purchase_history[].item` and `.review`),
so `regen_dataset.release.read_release` reads it unchanged and the inpainting pipeline can start
from either source.

Memory stays bounded on Clothing-size inputs (32M review lines, 2.7M metadata lines), in three
passes over a temporary working folder that is removed afterwards, also on error (a folder left by
a killed run is removed by the next one):
1. Stream the reviews in blocks through Arrow's C++ JSON parser and append the fields needed to
   bucket files on disk (Arrow IPC), partitioned by ranges of a stable hash of the user id;
   collect the reviewed ASINs into a sorted index that numbers them.
2. Stream the metadata; append the cleaned title, category, description and price of reviewed
   items to a file, by item number (HTML tags stripped, entities unescaped; a price range or an
   unreadable price is written as 0.0, as the release does).
3. Load one bucket at a time, build its users' sequences with vectorised filters, read their items
   and yield them. Users come out ordered by (hash, id), whatever the number of buckets.
The working folder needs about two thirds of the reviews' uncompressed size.

Lines are read by the project's one block reader (`regen_dataset.jsonl`): a block that Arrow
refuses, or with a line that lacks a required field or holds an implausible rating or time, is
parsed again line by line in Python, which names the file, line and field of each bad line
(`AmazonFormatError`), or skips and counts it with `skip_bad_lines=True`.

The package, by concern: `read` (entry points and the three passes), `lines` (the two line
formats), `buckets` (pass 1 and 3, the working folder), `items` (pass 2: the item index and
store), `text` (HTML and price cleaning), `report` (the counts).
"""

from __future__ import annotations

from regen_dataset.amazon.buckets import BUCKET_SCHEMA, user_hash
from regen_dataset.amazon.lines import META_SCHEMA, REVIEW_SCHEMA
from regen_dataset.amazon.read import build_sequences, read_amazon, write_sequences
from regen_dataset.amazon.report import MAX_LENGTH, MIN_LENGTH, AmazonFormatError, AmazonReport
from regen_dataset.amazon.text import clean_html, parse_price

__all__ = [
    "BUCKET_SCHEMA",
    "MAX_LENGTH",
    "META_SCHEMA",
    "MIN_LENGTH",
    "REVIEW_SCHEMA",
    "AmazonFormatError",
    "AmazonReport",
    "build_sequences",
    "clean_html",
    "parse_price",
    "read_amazon",
    "user_hash",
    "write_sequences",
]
