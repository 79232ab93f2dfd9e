"""Where a build spends its CPU: each stage run one after the other on one thread.

    python benchmarks/profile_build.py bench_out/office_synthetic_89489.jsonl

Prints CPU seconds per GB of JSON for reading, parsing, validation, conversion to canonical
sequences, splitting, and parquet encoding of both configs of the category.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from regen_dataset import jsonl, release
from regen_dataset.export import _PARQUET_OPTIONS
from regen_dataset.schema import FEATURES
from regen_dataset.splits import drop_critiques, split_batch


def main(path: str) -> None:
    pa.set_cpu_count(1)
    seconds: Counter = Counter()

    def timed(stage, function, *args):
        started = time.process_time()
        result = function(*args)
        seconds[stage] += time.process_time() - started
        return result

    report = release.ReadReport()
    writers = [
        pq.ParquetWriter(f"/tmp/profile_{i}.parquet", FEATURES.arrow_schema, **_PARQUET_OPTIONS)
        for i in (0, 1)
    ]
    blocks = jsonl.line_blocks(path, 16 << 20)
    while (block := timed("read", next, blocks, None)) is not None:
        table = timed("parse (Arrow JSON)", jsonl.arrow_parse, block.data, release.RELEASE_LINES)
        timed("validate", release.RELEASE_LINES.bad_rows, table)
        sequences = timed(
            "canonical sequences", release._to_sequences, table, report, release.CRITIQUE_SENTINELS
        )
        rows = timed("splits", split_batch, sequences)
        for batch in rows.values():
            timed("parquet, with critiques", writers[0].write_batch, batch)
            plain = timed("splits", drop_critiques, batch)
            timed("parquet, without critiques", writers[1].write_batch, plain)
    for writer in writers:
        timed("parquet, with critiques", writer.close)
    gigabytes = os.path.getsize(path) / 1e9
    for stage, value in seconds.items():
        print(f"{stage:<28} {value / gigabytes:6.2f} CPU s per GB")
    print(f"{'total':<28} {sum(seconds.values()) / gigabytes:6.2f} CPU s per GB")


if __name__ == "__main__":
    main(sys.argv[1])
