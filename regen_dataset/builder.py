"""REGEN as a `datasets` builder: the programmatic form of a loading script.

`datasets` 4 and later refuse loading-script files, so the configs live in this class:

    from regen_dataset.builder import Regen

    builder = Regen(config_name="office", data_files="REGEN/office.jsonl")
    builder.download_and_prepare()
    dataset = builder.as_dataset()          # DatasetDict with train / validation / test

    items = Regen(config_name="office_items", data_files="REGEN/office.jsonl")  # the catalog

It is an `ArrowBasedBuilder` (the sibling of `GeneratorBasedBuilder` that yields Arrow tables
rather than Python dicts), so it shares the vectorised reader and splitter with
`regen dataset build`, which writes the same rows as a Hub-style parquet folder. The release file
is read once: the pass that splits it spools every split to a compressed Arrow file, from which
`datasets` then writes each split.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import datasets
import pyarrow as pa

from regen_dataset import CITATION, HOMEPAGE
from regen_dataset.catalog import CatalogCollector, check_category
from regen_dataset.files import process_alive
from regen_dataset.release import ReadReport, read_source
from regen_dataset.schema import (
    CONFIG_NAMES,
    FEATURES,
    ITEM_FEATURES,
    ITEMS_CONFIG_NAMES,
    ITEMS_SPLIT,
    SPLIT_NAMES,
    config_category,
    config_has_critiques,
)
from regen_dataset.splits import PROTOCOLS, SplitReport, drop_critiques, split_batch

logger = datasets.logging.get_logger(__name__)

_DESCRIPTION = (
    "REGEN: Amazon Reviews 2018 (Office, Clothing) enriched with LLM-written critiques, "
    "narratives and auto-rater scores, one row per user and split."
)
PROTOCOL_DESCRIPTIONS = {
    "leave_one_out": (
        "leave-one-out splits: every user in every split; train predicts interaction N-2 from "
        "the ones before it, validation N-1, test the last one (N)"
    ),
    "user_disjoint": (
        "user-disjoint splits: each user in one split only, predicting their last interaction "
        "from the ones before it"
    ),
}


def config_description(config_name: str, protocol: str, source_has_critiques: bool = True) -> str:
    """What a config holds and how it was split; shown wherever the config is loaded."""
    category = config_category(config_name)
    if config_name in ITEMS_CONFIG_NAMES:
        return f"REGEN {category} catalog: every item of the {category} split rows, once."
    critiques = "with critiques" if config_has_critiques(config_name) else "without critiques"
    if config_has_critiques(config_name) and not source_has_critiques:
        critiques = f"no critiques in its source (the rows of {category}_no_critique)"
    return (
        f"REGEN {category}, {critiques}; {PROTOCOL_DESCRIPTIONS[protocol]} (protocol: {protocol})."
    )


class RegenConfig(datasets.BuilderConfig):
    """A category with or without critiques (or its catalog), and how to split it."""

    def __init__(
        self,
        *args,
        protocol: str = "leave_one_out",
        seed: int = 0,
        skip_bad_lines: bool = False,
        critique_sentinels: tuple[str, ...] = (),
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.protocol, self.seed, self.skip_bad_lines = protocol, seed, skip_bad_lines
        # Placeholder critique texts read as "no critique", besides the built-in ones.
        self.critique_sentinels = tuple(critique_sentinels)

    @property
    def category(self) -> str:
        return config_category(self.name)

    @property
    def is_catalog(self) -> bool:
        return self.name in ITEMS_CONFIG_NAMES

    @property
    def with_critiques(self) -> bool:
        return config_has_critiques(self.name)


class Regen(datasets.ArrowBasedBuilder):
    """Builds REGEN configs from release JSONL files given as `data_files`."""

    BUILDER_CONFIG_CLASS = RegenConfig
    BUILDER_CONFIGS = [RegenConfig(name=name) for name in CONFIG_NAMES + ITEMS_CONFIG_NAMES]
    DEFAULT_CONFIG_NAME = "office"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=f"{_DESCRIPTION}\n{config_description(self.config.name, self._protocol)}",
            features=ITEM_FEATURES if self.config.is_catalog else FEATURES,
            homepage=HOMEPAGE,
            citation=CITATION,
        )

    @property
    def _protocol(self) -> str:
        # `datasets` sets config keywords as attributes, so they are checked here, not in __init__.
        if self.config.protocol not in PROTOCOLS:
            raise ValueError(
                f"unknown split protocol {self.config.protocol!r}; expected one of {PROTOCOLS}"
            )
        return self.config.protocol

    def _split_generators(self, dl_manager):
        config = self.config
        protocol = self._protocol
        if not config.data_files:
            raise ValueError(
                f"REGEN config {config.name!r} needs the release file(s) of "
                f"{config.category!r}: pass data_files='path/to/{config.category}.jsonl'"
            )
        paths = [str(path) for files in config.data_files.values() for path in files]
        spool = _Spool(Path(self._cache_dir_root))
        try:
            catalog, report = CatalogCollector(), ReadReport()
            split_report = SplitReport(protocol)
            for path in paths:
                batches = read_source(
                    path,
                    skip_bad_lines=config.skip_bad_lines,
                    report=report,
                    extra_critique_sentinels=config.critique_sentinels,
                )
                for index, batch in enumerate(batches):
                    if index == 0:
                        check_category(batch, config.category, path)
                    rows = split_batch(batch, protocol, report=split_report, seed=config.seed)
                    if config.is_catalog:
                        for split_rows in rows.values():
                            catalog.add(split_rows)
                        continue
                    for split, split_rows in rows.items():
                        if not config.with_critiques:
                            split_rows = drop_critiques(split_rows)
                        spool.write(split, split_rows)
            split_report.refuse_no_rows(
                config.category, paths, () if config.is_catalog else [config.name]
            )
            _log_skips(report, split_report)
            if config.is_catalog:
                for batch in catalog.table().to_batches():
                    spool.write(ITEMS_SPLIT, batch)
            names = [ITEMS_SPLIT] if config.is_catalog else list(SPLIT_NAMES)
            files = spool.finish(names)
        except BaseException:
            spool.remove()
            raise
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"spooled": files[split]})
            for split in names
        ]

    def _generate_tables(self, spooled: str):
        with pa.memory_map(spooled) as source:
            reader = pa.ipc.open_file(source)
            for index in range(reader.num_record_batches):
                yield index, pa.Table.from_batches([reader.get_batch(index)])
        os.remove(spooled)
        directory = os.path.dirname(spooled)
        if not os.listdir(directory):
            os.rmdir(directory)


def _log_skips(read: ReadReport, split: SplitReport) -> None:
    """What the read left out, as a warning (shown by `datasets`' default verbosity)."""
    if read.skipped_lines or split.too_short:
        logger.warning(f"{read.summary()}\n{split.summary()}")


class _Spool:
    """Zstd-compressed Arrow files, one per split, in a temporary folder owned by this process."""

    PREFIX = "regen-spool-"

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        for old in root.glob(f"{self.PREFIX}*"):  # left by killed builds
            pid = old.name.removeprefix(self.PREFIX).partition("-")[0]
            if pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        self.directory = Path(tempfile.mkdtemp(prefix=f"{self.PREFIX}{os.getpid()}-", dir=root))
        self._writers: dict[str, pa.ipc.RecordBatchFileWriter] = {}
        self._options = pa.ipc.IpcWriteOptions(compression="zstd")

    def write(self, split: str, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        if split not in self._writers:
            self._writers[split] = pa.ipc.new_file(
                self.directory / f"{split}.arrow", batch.schema, options=self._options
            )
        self._writers[split].write_batch(batch)

    def finish(self, splits: list[str]) -> dict[str, str]:
        """The spooled file of each split; every split has rows (`refuse_no_rows` saw to it)."""
        for writer in self._writers.values():
            writer.close()
        return {split: str(self.directory / f"{split}.arrow") for split in splits}

    def remove(self) -> None:
        for writer in self._writers.values():
            writer.close()
        shutil.rmtree(self.directory, ignore_errors=True)
