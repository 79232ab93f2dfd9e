"""Write a Hub-style dataset folder from release files, and push it to the Hub.

The folder holds parquet shards per config and split plus a README.md (the dataset card, with a
YAML `configs` block that maps the shards), so that `load_dataset("path/to/regen", "office")`
works offline and `regen dataset push` publishes it unchanged:

    regen/
      README.md
      build_report.json
      data/office/train-00000-of-00001.parquet
      data/office_no_critique/...
      data/office_items/train-00000-of-00001.parquet     (the catalog)

One pass over each release file writes both of its configs: Arrow parses and splits in the main
thread while one writer thread per config encodes parquet (Arrow releases the GIL throughout).
The folder is assembled in a temporary sibling directory and renamed into place at the end, so an
interrupted build leaves nothing half-written behind.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from tqdm.auto import tqdm

from regen_dataset.builder import config_description
from regen_dataset.catalog import CatalogCollector, check_category
from regen_dataset.files import is_partial, process_alive, write_json, write_text
from regen_dataset.release import ReadReport, read_source
from regen_dataset.schema import (
    CATEGORIES,
    FEATURES,
    ITEM_FEATURES,
    ITEMS_SPLIT,
    SPLIT_NAMES,
    config_category,
    items_config,
)
from regen_dataset.splits import DEFAULT_FRACTIONS, SplitReport, drop_critiques, split_batch

SHARD_BYTES = 256 << 20  # roll to a new parquet file past this size on disk
_PARQUET_OPTIONS = dict(
    compression="snappy",
    write_statistics=False,  # min/max of review texts help no reader and cost time
    # Dictionaries pay off for item fields repeated across users and splits, not for reviews.
    use_dictionary=[
        f"{column}.{item}"
        for column in ("history.list.element", "target")
        for item in ("item_id", "title", "description", "categories.list.element")
    ],
    # Content-defined chunking of data pages is left off: with these encodings it made the Hub's
    # deduplication no better, between configs or across rebuilds (benchmarks/bench_parquet_cdc.py).
)
_CATALOG_PARQUET_OPTIONS = dict(compression="snappy", write_statistics=False)
_BLOCKS_IN_FLIGHT = 2  # bounds memory: blocks split but not yet written


@dataclass
class BuildReport:
    out: str
    protocol: str
    sources: dict[str, list[str]] = field(default_factory=dict)
    read: dict[str, dict] = field(default_factory=dict)
    split: dict[str, dict] = field(default_factory=dict)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # config -> split -> rows
    num_bytes: dict[str, dict[str, int]] = field(default_factory=dict)
    files: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)  # config -> `_fingerprint`
    critique_sentinels: list[str] = field(default_factory=list)  # read as "no critique" too
    # The user-disjoint assignment (None under leave-one-out, which draws nothing).
    seed: int | None = None
    fractions: list[float] | None = None  # train, validation, test shares of users
    synthetic: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """The report as `build_report.json` holds it: with no local path in it.

        The folder is named by its own name and each source file by its file name, wherever they
        appear (lists, summaries, skipped-line messages): the folder is published as it is, and
        the builder's directories are nobody's business on the Hub.
        """
        local = {
            os.fspath(path): os.path.basename(path)
            for paths in self.sources.values()
            for path in paths
        }
        local[os.fspath(self.out)] = os.path.basename(os.path.normpath(self.out))
        for path in list(local):
            local.setdefault(os.path.abspath(path), local[path])
        payload = {key: getattr(self, key) for key in self.__dataclass_fields__}
        return _replace_paths(json.loads(json.dumps(payload, default=str)), local)

    def protocol_text(self) -> str:
        """The protocol, with the seed and fractions of a user-disjoint assignment."""
        if self.seed is None or not self.fractions:
            return self.protocol
        shares = "/".join(f"{share:g}" for share in self.fractions)
        return f"{self.protocol}, seed {self.seed}, train/validation/test fractions {shares}"

    @classmethod
    def from_dict(cls, payload: dict) -> BuildReport:
        return cls(**{key: payload[key] for key in cls.__dataclass_fields__ if key in payload})

    def summary(self) -> str:
        lines = [f"built {self.out} in {self.seconds:.1f}s ({self.protocol_text()})"]
        for category in self.read:
            lines.append(
                f"[{category}] " + self.read[category]["summary"].replace("\n", f"\n[{category}] ")
            )
            lines.append(f"[{category}] " + self.split[category]["summary"])
        for config, rows in self.rows.items():
            lines.append(f"{config}: " + ", ".join(f"{split} {rows[split]:,}" for split in rows))
        return "\n".join(lines)


def is_synthetic_build(folder: str | os.PathLike) -> bool:
    """Whether `folder` is a build of synthetic rows, as its `build_report.json` records (False
    for a folder without one, or a Hub id)."""
    report = Path(folder) / "build_report.json"
    if not report.is_file():
        return False
    return bool(json.loads(report.read_text(encoding="utf-8")).get("synthetic"))


def _replace_paths(value, local: dict[str, str]):
    """`value` (JSON data) with every path of `local` replaced by its short form, longest first."""
    if isinstance(value, str):
        for path in sorted(local, key=len, reverse=True):
            value = value.replace(path, local[path])
        return value
    if isinstance(value, list):
        return [_replace_paths(item, local) for item in value]
    if isinstance(value, dict):
        return {key: _replace_paths(item, local) for key, item in value.items()}
    return value


def find_sources(specs: Iterable[str], *, skipped: list[str] | None = None) -> dict[str, list[str]]:
    """Release files by category from `PATH`, `DIR` or `category=PATH` specs.

    A file's category comes from its name (`office.jsonl`, `clothing.jsonl.gz`, ...); a directory
    is searched recursively for such files, as in both Kaggle archive layouts. The temporary
    files of writers found in a directory (`office.partial-4242.jsonl`, perhaps half-written by
    a killed process) are never sources: they go to `skipped`, for the caller to report.
    """
    sources: dict[str, list[str]] = {}
    for spec in specs:
        # `CATEGORY=PATH` only where the part before the first "=" names a category: a path may
        # hold "=" itself (`runs/seed=3/office.jsonl`, `office=runs/a=b/office.jsonl`).
        category, _, path = spec.partition("=")
        if category not in CATEGORIES:
            category, path = "", spec
        if os.path.isdir(path):
            found = sorted(
                p
                for p in glob.glob(os.path.join(path, "**", "*.jsonl*"), recursive=True)
                if re.search(r"\.jsonl(\.gz)?$", p)
            )
            partial = [p for p in found if is_partial(p)]
            if skipped is not None:
                skipped.extend(partial)
            found = [p for p in found if not is_partial(p)]
            if not found:
                raise FileNotFoundError(f"no .jsonl or .jsonl.gz files under {path}")
        elif os.path.isfile(path):
            found = [path]
        else:
            hint = (
                f" (a CATEGORY=PATH source names one of {CATEGORIES} before the '=')"
                if "=" in spec
                else ""
            )
            raise FileNotFoundError(f"release source {path!r} does not exist{hint}")
        for file in found:
            file_category = category or _category_from_name(file)
            if file_category not in CATEGORIES:
                raise ValueError(
                    f"unknown category {file_category!r} for {file}; expected {CATEGORIES}"
                )
            sources.setdefault(file_category, []).append(file)
    if not sources:
        raise ValueError("no release sources given")
    return sources


def _category_from_name(path: str) -> str:
    name = os.path.basename(path).lower()
    matches = [category for category in CATEGORIES if category in name]
    if len(matches) != 1:
        raise ValueError(
            f"cannot tell the category of {path} from its name; pass it as office={path} "
            f"or clothing={path}"
        )
    return matches[0]


class _ShardedWriter:
    """Parquet shards of one config and split, renamed by `_name_shards` once finished."""

    def __init__(self, directory: Path, split: str):
        self.directory, self.split = directory, split
        self.paths: list[Path] = []
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0
        self.bytes = 0  # in memory (Arrow), as the card's `num_bytes` counts them

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:  # a row group of 0 rows first in a file makes `datasets` fail
            return
        if self.writer is None:
            name = f"{self.split}.{len(self.paths):05d}.parquet.partial"
            self.paths.append(self.directory / name)
            self.writer = pq.ParquetWriter(
                self.paths[-1], FEATURES.arrow_schema, **_PARQUET_OPTIONS
            )
        self.writer.write_batch(batch)
        self.rows += batch.num_rows
        self.bytes += batch.nbytes
        if self.paths[-1].stat().st_size >= SHARD_BYTES:
            self.writer.close()
            self.writer = None

    def close(self) -> list[str]:
        if self.writer is not None:
            self.writer.close()
        return [str(path) for path in self.paths]


def build_folder(
    sources: dict[str, list[str]],
    out: str | os.PathLike,
    *,
    protocol: str = "leave_one_out",
    skip_bad_lines: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    critique_sentinels: Iterable[str] = (),
    progress: bool = True,
) -> BuildReport:
    """Build every config of every category in `sources` into the folder `out`.

    `critique_sentinels`: placeholder critique texts to read as "no critique", besides the
    built-in ones (`release.CRITIQUE_SENTINELS`), whatever their length.
    """
    out = Path(out)
    if out.is_symlink():  # build into the folder it points to; the link stays
        out = out.resolve()
    _restore_abandoned_swap(out)
    if out.exists():
        _check_replaceable(out, sources, overwrite)
    started = time.perf_counter()
    _remove_abandoned_staging(out)
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    critique_sentinels = list(critique_sentinels)
    disjoint = protocol == "user_disjoint"
    report = BuildReport(
        out=str(out),
        protocol=protocol,
        sources=sources,
        critique_sentinels=critique_sentinels,
        seed=seed if disjoint else None,
        fractions=[float(share) for share in fractions] if disjoint else None,
    )
    try:
        synthetic_users = 0
        for category, paths in sources.items():
            read_report = _build_category(
                category,
                paths,
                staging,
                report,
                protocol,
                skip_bad_lines,
                progress,
                critique_sentinels,
                seed=seed,
                fractions=tuple(fractions),
            )
            synthetic_users += read_report.synthetic_users
        users = sum(read["users"] for read in report.read.values())
        if 0 < synthetic_users < users:
            raise ValueError(
                f"the sources mix {synthetic_users:,} synthetic users with "
                f"{users - synthetic_users:,} real ones; build them into separate folders"
            )
        report.synthetic = users > 0 and synthetic_users == users
        report.fingerprints = {
            config: _fingerprint(staging / "data" / config, files)
            for config, files in report.files.items()
        }
        report.seconds = round(time.perf_counter() - started, 2)
        write_json(staging / "build_report.json", report.to_dict())
        (staging / "README.md").write_text(render_card(report), encoding="utf-8")
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _build_category(
    category,
    paths,
    staging,
    report,
    protocol,
    skip_bad_lines,
    progress,
    critique_sentinels,
    *,
    seed: int,
    fractions: tuple[float, float, float],
) -> ReadReport:
    read_report, split_report = ReadReport(), SplitReport(protocol)
    configs = {category: False, f"{category}_no_critique": True}  # config -> drop critiques
    catalog = CatalogCollector()
    writers = {}
    for config in configs:
        (staging / "data" / config).mkdir(parents=True)
        writers[config] = {
            split: _ShardedWriter(staging / "data" / config, split) for split in SPLIT_NAMES
        }
    # One thread per config keeps each config's writes in order while both encode in parallel
    # with the main thread's parsing (Arrow releases the GIL).
    pools = {config: ThreadPoolExecutor(1, thread_name_prefix=config) for config in configs}
    pending: list[list[Future]] = []
    bar = tqdm(disable=not progress, desc=f"build {category}", unit=" users", unit_scale=True)
    try:
        for path, index, batch in _batches(paths, skip_bad_lines, read_report, critique_sentinels):
            if index == 0:
                check_category(batch, category, path)
            rows = split_batch(batch, protocol, report=split_report, seed=seed, fractions=fractions)
            for split_rows in rows.values():
                catalog.add(split_rows)
            pending.append(
                [
                    pools[config].submit(_write_rows, writers[config], rows, without_critiques)
                    for config, without_critiques in configs.items()
                ]
            )
            while len(pending) > _BLOCKS_IN_FLIGHT:
                for future in pending.pop(0):
                    future.result()
            bar.update(batch.num_rows)
        for futures in pending:
            for future in futures:
                future.result()
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True)
        bar.close()
    split_report.refuse_no_rows(category, paths, configs)
    for config in configs:
        directory, config_writers = staging / "data" / config, writers[config].items()
        report.files[config] = {s: _name_shards(directory, s, w.close()) for s, w in config_writers}
        report.rows[config] = {s: w.rows for s, w in config_writers}
        report.num_bytes[config] = {s: w.bytes for s, w in config_writers}
    _write_catalog(catalog, staging / "data" / items_config(category), report)
    report.read[category] = {**read_report.to_dict(), "summary": read_report.summary()}
    report.split[category] = {**split_report.to_dict(), "summary": split_report.summary()}
    return read_report


def _batches(paths: list[str], skip_bad_lines: bool, report: ReadReport, sentinels=()):
    """(path, index within the file, batch) of canonical sequences, file after file."""
    for path in paths:
        batches = read_source(
            path, skip_bad_lines=skip_bad_lines, report=report, extra_critique_sentinels=sentinels
        )
        for index, batch in enumerate(batches):
            yield path, index, batch


def _write_catalog(catalog: CatalogCollector, directory: Path, report: BuildReport) -> None:
    directory.mkdir(parents=True)
    table = catalog.table()
    config = directory.name
    name = f"{ITEMS_SPLIT}-00000-of-00001.parquet"
    pq.write_table(table, directory / name, **_CATALOG_PARQUET_OPTIONS)
    report.files[config] = {ITEMS_SPLIT: [name]}
    report.rows[config] = {ITEMS_SPLIT: table.num_rows}
    report.num_bytes[config] = {ITEMS_SPLIT: table.nbytes}


def _check_replaceable(out: Path, sources: dict[str, list[str]], overwrite: bool) -> None:
    """`--overwrite` replaces an earlier build, never a folder that holds anything else: the
    release files downloaded into it (Kaggle's `regen/REGEN/office.jsonl` under the default
    `--out regen`) would be deleted with it."""
    if not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    inside = [
        path
        for paths in sources.values()
        for path in paths
        if Path(path).resolve().is_relative_to(out.resolve())
    ]
    if inside:
        raise FileExistsError(
            f"{out} holds the source {inside[0]}: replacing the folder would delete it; build "
            "into another --out"
        )
    if not (out / "build_report.json").is_file():
        raise FileExistsError(
            f"{out} exists and is no earlier build (it has no build_report.json): --overwrite "
            "replaces only a build; choose another --out, or remove the folder yourself"
        )


def _restore_abandoned_swap(out: Path) -> None:
    """A build killed between moving the old folder aside and the new one in left no `out`:
    the old one goes back. Old folders of finished swaps whose removal failed are removed."""
    for old in sorted(out.parent.glob(f".{out.name}.old-*")):
        pid = old.name.rpartition("-")[2]
        if pid.isdigit() and process_alive(int(pid)):
            continue
        if out.exists() or out.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, out)


def _remove_abandoned_staging(out: Path, kind: str = "building") -> None:
    """Staging folders of builds (or pushes) that were killed (their process is gone) by `out`."""
    for staging in out.parent.glob(f".{out.name}.{kind}-*"):
        pid = staging.name.rpartition("-")[2]
        if not pid.isdigit() or not process_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _name_shards(directory: Path, split: str, shards: list[str]) -> list[str]:
    """Rename finished shards to `{split}-00000-of-0000N.parquet`.

    Every split has rows here: `refuse_no_rows` stops a build with an empty split, which
    `datasets` could not load.
    """
    names = []
    for index, path in enumerate(shards):
        name = f"{split}-{index:05d}-of-{len(shards):05d}.parquet"
        os.replace(path, directory / name)
        names.append(name)
    return names


def _fingerprint(directory: Path, files: dict[str, list[str]]) -> str:
    """A hash of a config's parquet shards (names and bytes).

    It goes into the config's description on the card because `load_dataset` keys its cache of a
    local folder on the folder's name and the card's YAML alone: without it, a folder rebuilt (or
    built elsewhere under the same name) with other rows of the same sizes is read from the cache
    of the old one.
    """
    digest = hashlib.sha256()
    for split, names in files.items():
        for name in names:
            digest.update(f"{split}/{name}\0".encode())
            with open(directory / name, "rb") as shard:
                while block := shard.read(1 << 22):
                    digest.update(block)
    return digest.hexdigest()[:16]


def _write_rows(writers: dict, rows: dict[str, pa.RecordBatch], without_critiques: bool) -> None:
    for split, batch in rows.items():
        writers[split].write(drop_critiques(batch) if without_critiques else batch)


def _swap_into_place(staging: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)  # the build is done; a leftover goes next time
    else:
        os.replace(staging, out)


# ---------------------------------------------------------------------------------------------
# The dataset card


def card_template() -> Path:
    """`dataset_card.md`: inside the installed package, or at the root of a checkout.

    The file lives at the repository root; the wheel build (`setup.py`) copies it into
    `regen_dataset/`, so that an installed `regen dataset build` finds it too.
    """
    candidates = (
        Path(__file__).with_name("dataset_card.md"),
        Path(__file__).resolve().parents[1] / "dataset_card.md",
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "the dataset card template dataset_card.md is missing: looked in "
        + " and ".join(str(c) for c in candidates)
    )


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a repeated object (the features of every config) in full each time: the Hub's
    metadata reader and most people do not follow YAML anchors (`&id001`)."""

    def ignore_aliases(self, data) -> bool:
        return True


# The loading examples of dataset_card.md name the dataset "regen"; the card names the real place.
_LOAD_CALL = re.compile(r"""load_dataset\(\s*(["'])regen\1""")
# Hub task ids the template may carry that do not describe REGEN (recommending items is not
# document retrieval); the Hub accepts task categories without ids.
_UNFIT_TASK_IDS = {"document-retrieval"}


def render_card(report: BuildReport, repo_id: str | None = None) -> str:
    """The folder's README.md: `dataset_card.md` with a YAML header describing this build.

    Its loading examples name `repo_id` when the folder is pushed, else the folder's path.
    """
    template = card_template()
    text = template.read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, flags=re.S)
    if not match:
        raise ValueError(f"{template} must start with a YAML header between --- lines")
    header = yaml.safe_load(match.group(1))
    body = text[match.end() :]
    target = repo_id or os.fspath(report.out)
    body, loads = _LOAD_CALL.subn(lambda m: f"load_dataset({json.dumps(target)}", body)
    if not loads:
        raise ValueError(f'{template} has no load_dataset("regen", ...) example to complete')
    header["configs"] = _config_entries(report)
    header["dataset_info"] = _dataset_info(report)
    header["size_categories"] = [_size_category(_distinct_rows(report))]
    task_ids = [task for task in header.pop("task_ids", None) or [] if task not in _UNFIT_TASK_IDS]
    if task_ids:
        header["task_ids"] = task_ids
    published = BuildReport.from_dict(report.to_dict())  # no local path reaches the card
    build = ["", "## This build", ""]
    if report.synthetic:
        build += [
            "> **SYNTHETIC DATA.** Every row of this folder was made by the `regen` package's "
            'synthetic generator (its lines say `"synthetic": true`). No row describes a real '
            "user or product; use it to try the tooling, never to report results.",
            "",
        ]
    build += [f"Built with `regen dataset build` ({report.protocol_text()} splits) from:", ""]
    build += [
        f"- `{category}`: " + ", ".join(f"`{os.path.basename(p)}`" for p in paths)
        for category, paths in report.sources.items()
    ]
    build += _missing_text_notes(report)
    build += ["", "```", published.summary(), "```", ""]
    metadata = yaml.dump(
        header, Dumper=_NoAliasDumper, sort_keys=False, width=100, allow_unicode=True
    )
    return "---\n" + metadata + "---\n" + body + "\n".join(build)


def _source_has_critiques(report: BuildReport, category: str) -> bool:
    """False only when the category was read and none of its lines had a critique."""
    read = report.read.get(category)
    return read is None or bool(read.get("found", {}).get("critique"))


def _missing_text_notes(report: BuildReport) -> list[str]:
    """A line per category whose source has no critiques or no narratives at all (a MovieLens
    conversion, an Amazon category before inpainting), so that the card does not promise
    them."""
    notes = []
    for category, read in report.read.items():
        found = read.get("found", {})
        lacks = []
        if not found.get("critique"):
            lacks.append(
                f"no critiques (`{category}` and `{category}_no_critique` hold the same rows)"
            )
        if not any(found.get(field) for field in _NARRATIVE_FIELDS):
            lacks.append("no narratives")
        if lacks:
            notes.append(f"- `{category}` has {' and '.join(lacks)}: its source lines carry none.")
    return [""] + notes if notes else []


_NARRATIVE_FIELDS = (
    "last_purchase.reason",
    "last_purchase.explanation",
    "last_purchase.endorsement",
    "user.profile",
    "user.brief_summary",
    "user.long_summary",
)


def _distinct_rows(report: BuildReport) -> int:
    """Rows of the user configs, each category once (its `_no_critique` config repeats them)."""
    return sum(
        sum(report.rows[category].values()) for category in CATEGORIES if category in report.rows
    )


def _config_entries(report: BuildReport) -> list[dict]:
    """The card's `configs` block: data files, and a description that names the protocol and
    the data's fingerprint."""
    default = _default_config(report.rows)
    return [
        {
            "config_name": config,
            "description": _described(report, config),
            "data_files": [
                {"split": split, "path": f"data/{config}/{split}-*.parquet"}
                for split in report.rows[config]
            ],
            **({"default": True} if config == default else {}),
        }
        for config in report.rows
    ]


def _default_config(configs) -> str:
    """The config `load_dataset(folder)` loads without a name: the first category's (`office`,
    the smaller) where it was built, whatever order the sources came in."""
    return next((c for c in CATEGORIES if c in configs), next(iter(configs)))


def _described(report: BuildReport, config: str) -> str:
    category = config_category(config)
    text = config_description(config, report.protocol, _source_has_critiques(report, category))
    fingerprint = report.fingerprints.get(config)  # none in reports of older builds
    return f"{text} Data fingerprint {fingerprint}." if fingerprint else text


def _dataset_info(report: BuildReport) -> list[dict]:
    return [
        {
            "config_name": config,
            "features": (ITEM_FEATURES if config.endswith("_items") else FEATURES)._to_yaml_list(),
            "splits": [
                {"name": split, "num_bytes": report.num_bytes[config][split], "num_examples": rows}
                for split, rows in report.rows[config].items()
            ],
        }
        for config in report.rows
    ]


def _size_category(rows: int) -> str:
    """The Hub's size bucket of a dataset of `rows` examples."""
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ):
        if rows < limit:
            return name
    return "10M<n<100M"


# ---------------------------------------------------------------------------------------------
# Publishing

# What a build owns on the Hub: every remote file under data/ that the new folder lacks is
# deleted in the push (stale shards of an earlier build would otherwise match `train-*.parquet`).
_OWNED_REMOTE_PATTERNS = ["data/*"]


def check_data_files(folder: str | os.PathLike, report: BuildReport) -> None:
    """The folder's `data/` holds exactly the parquet files its build report lists: a shard
    that is missing (a copy cut short) or left from another build is refused before a push,
    which would otherwise delete the Hub's copy of it or publish rows of two builds."""
    if not report.files:  # a report of a build that did not list its files
        return
    data = Path(folder) / "data"
    listed = {
        f"{config}/{name}"
        for config, splits in report.files.items()
        for names in splits.values()
        for name in names
    }
    found = {path.relative_to(data).as_posix() for path in data.rglob("*.parquet")}
    missing, extra = sorted(listed - found), sorted(found - listed)
    if missing or extra:
        problems = [f"data/{name} is missing" for name in missing[:3]]
        problems += [f"data/{name} is not in the build report" for name in extra[:3]]
        more = len(missing) + len(extra) - len(problems)
        raise ValueError(
            f"{folder}: {'; '.join(problems)}{f' (and {more} more)' if more > 0 else ''}: the "
            "folder is not what build_report.json says was built; rebuild it"
        )


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Upload a built folder to a dataset repository on the Hub; returns the commit URL.

    The repository ends up holding exactly the folder's data: remote files under `data/` that
    the folder does not have (the shards of an earlier build with another shard count) are
    deleted by the same upload. The README's loading examples name `repo_id`, and
    `build_report.json` holds no local path. `upload_folder` is the Hub client's resumable
    upload (with `hf_xet`, installed with `huggingface_hub`): large folders go in several
    commits, and running the same push again after an interruption skips what arrived.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / "README.md").exists() or not (folder / "data").is_dir():
        raise FileNotFoundError(
            f"{folder} is not a built REGEN folder (README.md and data/ expected)"
        )
    report_path = folder / "build_report.json"
    if not report_path.is_file():
        raise FileNotFoundError(f"{report_path} is missing: rebuild the folder with the builder")
    report = BuildReport.from_dict(json.loads(report_path.read_text(encoding="utf-8")))
    check_data_files(folder, report)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    _remove_abandoned_staging(folder, kind="push")
    view = folder.parent / f".{folder.name}.push-{os.getpid()}"
    shutil.rmtree(view, ignore_errors=True)
    try:
        _publication_view(folder, view, report, repo_id)
        commit = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=view,
            delete_patterns=_OWNED_REMOTE_PATTERNS,
            commit_message="Upload REGEN dataset folder built with `regen dataset build`",
        )
    finally:
        shutil.rmtree(view, ignore_errors=True)
    return str(getattr(commit, "commit_url", commit))


def _publication_view(folder: Path, view: Path, report: BuildReport, repo_id: str) -> None:
    """The folder as published, in `view`: its data files hard-linked (no copy of the shards),
    the README rendered for `repo_id` and the build report without local paths."""
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if not path.is_file() or relative.parts[0].startswith("."):
            continue
        if relative.as_posix() in ("README.md", "build_report.json"):
            continue
        (view / relative).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, view / relative)
        except OSError:  # a file system without hard links
            shutil.copy2(path, view / relative)
    write_text(view / "README.md", render_card(report, repo_id=repo_id))
    write_json(view / "build_report.json", report.to_dict())
