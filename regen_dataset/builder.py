"""REGEN as a `datasets` builder: the programmatic form of a loading script.

`datasets` 4 and later refuse loading-script files, so the configs live in this class:

    from regen_dataset.builder import Regen

    builder = Regen(config_name="office", data_files="REGEN/office.jsonl")
    builder.download_and_prepare()
    dataset = builder.as_dataset()          # DatasetDict with train / validation / test

It is an `ArrowBasedBuilder` (the sibling of `GeneratorBasedBuilder` that yields Arrow tables
rather than Python dicts), so it shares the vectorised reader and splitter with
`regen dataset build`, which writes the same rows as a Hub-style parquet folder.
"""

from __future__ import annotations

import datasets
import pyarrow as pa

from regen_dataset import CITATION, HOMEPAGE
from regen_dataset.release import read_release
from regen_dataset.schema import (
    CONFIG_NAMES,
    FEATURES,
    SPLIT_NAMES,
    config_category,
    config_has_critiques,
)
from regen_dataset.splits import PROTOCOLS, drop_critiques, split_batch

_DESCRIPTION = (
    "REGEN: Amazon Reviews 2018 (Office, Clothing) enriched with LLM-written critiques, "
    "narratives and auto-rater scores, one row per user and split."
)


class RegenConfig(datasets.BuilderConfig):
    """A category with or without critiques, and how to split it."""

    def __init__(
        self,
        *args,
        protocol: str = "leave_one_out",
        seed: int = 0,
        skip_bad_lines: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.protocol, self.seed, self.skip_bad_lines = protocol, seed, skip_bad_lines

    @property
    def category(self) -> str:
        return config_category(self.name)

    @property
    def with_critiques(self) -> bool:
        return config_has_critiques(self.name)


class Regen(datasets.ArrowBasedBuilder):
    """Builds REGEN configs from release JSONL files given as `data_files`."""

    BUILDER_CONFIG_CLASS = RegenConfig
    BUILDER_CONFIGS = [RegenConfig(name=name) for name in CONFIG_NAMES]
    DEFAULT_CONFIG_NAME = "office"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=FEATURES,
            homepage=HOMEPAGE,
            citation=CITATION,
        )

    def _split_generators(self, dl_manager):
        # `datasets` sets config keywords as attributes, so they are checked here, not in __init__.
        if self.config.protocol not in PROTOCOLS:
            raise ValueError(
                f"unknown split protocol {self.config.protocol!r}; expected one of {PROTOCOLS}"
            )
        if not self.config.data_files:
            raise ValueError(
                f"REGEN config {self.config.name!r} needs the release file(s) of "
                f"{self.config.category!r}: pass data_files='path/to/{self.config.category}.jsonl'"
            )
        paths = [str(path) for files in self.config.data_files.values() for path in files]
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"paths": paths, "split": split})
            for split in SPLIT_NAMES
        ]

    def _generate_tables(self, paths: list[str], split: str):
        config = self.config
        batches = read_release(paths, skip_bad_lines=config.skip_bad_lines)
        for index, batch in enumerate(batches):
            rows = split_batch(batch, config.protocol, seed=config.seed)[split]
            if not config.with_critiques:
                rows = drop_critiques(rows)
            yield index, pa.Table.from_batches([rows])
