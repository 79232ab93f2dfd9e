"""The item vocabulary file a checkpoint carries, and the mixin that saves and loads it.

This module is self-contained on purpose (pyarrow and transformers only, no import from this
package): `regen release` ships it beside a checkpoint's modeling code, so that
`AutoModel.from_pretrained(REPO, trust_remote_code=True)` loads the model and its vocabulary on a
machine where this package is not installed. There `model.item_vocabulary` is a
`StoredItemVocabulary`; with the package installed it is the full
`regen_models.items.ItemVocabulary` (same file, same `item_ids`, `index` and `category`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

VOCABULARY_FILE = "item_vocabulary.parquet"
CATEGORY_METADATA_KEY = b"regen.category"


class VocabularyMismatchError(ValueError):
    """A model's item vocabulary is not the dataset's."""


class StoredItemVocabulary:
    """An item vocabulary as read from its file: the category and the items in id order."""

    def __init__(self, category: str, table: pa.Table):
        self.category = category
        self.table = table
        self._index = {item_id: i for i, item_id in enumerate(self.item_ids)}

    @property
    def item_ids(self) -> list[str]:
        return self.table.column("item_id").to_pylist()

    def __len__(self) -> int:
        return self.table.num_rows

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._index

    def index(self, item_id: str, where: str = "") -> int:
        if item_id not in self._index:
            place = f" ({where})" if where else ""
            raise KeyError(f"item {item_id!r}{place} is not in the {self.category} vocabulary")
        return self._index[item_id]

    def save(self, directory: str | os.PathLike) -> Path:
        return write_vocabulary_file(directory, self.category, self.table)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> StoredItemVocabulary:
        category, table = read_vocabulary_file(directory)
        return cls(category, table)


def write_vocabulary_file(directory: str | os.PathLike, category: str, table: pa.Table) -> Path:
    """`directory`'s vocabulary file, written atomically (a reader never meets half of it, an
    interrupted save leaves the previous file): beside it under a hidden name, then renamed."""
    path = Path(directory) / VOCABULARY_FILE
    table = table.replace_schema_metadata({CATEGORY_METADATA_KEY: category})
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        pq.write_table(table, partial, compression="zstd")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def read_vocabulary_file(directory: str | os.PathLike) -> tuple[str, pa.Table]:
    """(category, items table without metadata) of `directory`'s vocabulary file."""
    path = Path(directory) / VOCABULARY_FILE
    if not path.exists():
        raise FileNotFoundError(f"{directory} has no item vocabulary ({VOCABULARY_FILE})")
    table = pq.read_table(path)
    category = (table.schema.metadata or {}).get(CATEGORY_METADATA_KEY, b"").decode()
    if not category:
        raise ValueError(f"{path} does not say which category it belongs to")
    return category, table.replace_schema_metadata(None)


def check_local_folder(name_or_path, what: str = "checkpoint folder") -> None:
    """A name that can only be a local folder (not `org/name`) must exist.

    transformers and datasets try such a name on the Hub too and answer with "Repo id must be
    in the form ...", which hides the real mistake: a path that is not there.
    """
    path = os.fspath(name_or_path)
    if os.path.exists(path):
        return
    hub_id_form = path.count("/") <= 1 and "\\" not in path and not path.startswith((".", "~"))
    if hub_id_form and not os.path.isabs(path):
        return
    raise FileNotFoundError(f"{path}: no such {what}")


def local_snapshot(name_or_path, what: str = "checkpoint folder") -> str:
    """A folder holding `name_or_path`'s files: the folder itself, or the Hub repository of that
    id downloaded into the Hub cache (offline, `HF_HUB_OFFLINE=1`: found there)."""
    path = os.fspath(name_or_path)
    if os.path.isdir(path):
        return path
    check_local_folder(path, what)
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(path)
    except Exception as error:  # offline and not cached, no such repo, private, ...
        raise FileNotFoundError(
            f"{path}: no such {what} here, and no Hub repository of that id could be fetched "
            f"({type(error).__name__}: {error})"
        ) from None


def check_model_type(name_or_path, expected: str, hub: dict) -> None:
    """A checkpoint of another model (a LUMEN folder given to FLARE) is refused by name:
    transformers would load it with freshly initialised weights, or fail deep in the config."""
    from transformers import PretrainedConfig

    config, _ = PretrainedConfig.get_config_dict(name_or_path, **hub)
    found = config.get("model_type")
    if found and found != expected:
        raise ValueError(
            f"{os.fspath(name_or_path)} holds a {found!r} checkpoint, not {expected!r}: load it "
            "with its own class"
        )


def check_all_weights_loaded(name_or_path, info: dict) -> None:
    """transformers fills weights that a checkpoint lacks with fresh ones and only logs it; a
    model that then ranks or writes at random is worse than an error."""
    missing = sorted(info.get("missing_keys") or [])
    unmerged = sorted(k for k in info.get("unexpected_keys") or [] if k.startswith("switch_rows."))
    if unmerged and not missing:
        raise ValueError(
            f"{os.fspath(name_or_path)} holds LUMEN's trainable switch-token rows unmerged "
            f"({', '.join(unmerged)}), which loading would drop: save the model after "
            "merge_switch_rows() (the training script does), or load the run's output folder"
        )
    if not missing:
        return
    message = (
        f"{os.fspath(name_or_path)} lacks {len(missing)} of this model's weights "
        f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
    )
    if any("lora_" in key for key in info.get("unexpected_keys") or []):
        message += (
            ": it holds unmerged LoRA layers, as the Trainer's checkpoint-N folders of a LoRA run "
            "do; load the run's output folder, whose LoRA weights are merged"
        )
    raise ValueError(message)


def _file_stamps(folder) -> dict[str, tuple[int, int]]:
    """(modification time, size) of each file directly in `folder`."""
    if not os.path.isdir(folder):
        return {}
    stamps = {}
    for entry in os.scandir(folder):
        if entry.is_file():
            stat = entry.stat()
            stamps[entry.name] = (stat.st_mtime_ns, stat.st_size)
    return stamps


_PUSH_ARGUMENTS = ("repo_id", "commit_message", "create_pr", "private", "token", "revision")


def upload_folder(
    folder, repo_id=None, private=None, token=None, commit_message=None, **commit
) -> None:
    """`save_pretrained(..., push_to_hub=True)`'s upload: the whole saved folder, one commit, to
    `repo_id` (by default the folder's name, as transformers does)."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id or Path(folder).name, private=private, exist_ok=True).repo_id
    message = commit_message or "Upload model"
    api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=message, **commit)


class ItemVocabularyMixin:
    """For a `PreTrainedModel` whose item ids index an item vocabulary.

    `model.item_vocabulary` travels with the weights: `save_pretrained` (and so `push_to_hub` and
    the Trainer's checkpoints) writes it beside them, `from_pretrained` reads it back from a
    folder or a Hub repo (as a `vocabulary_class`). A model saved without one loads with
    `item_vocabulary = None`.
    """

    item_vocabulary = None
    vocabulary_class = StoredItemVocabulary

    def save_pretrained(
        self,
        save_directory,
        *args,
        is_main_process: bool = True,
        push_to_hub: bool = False,
        **kwargs,
    ):
        # transformers uploads before it returns: the push waits until the vocabulary is written.
        hub = {key: kwargs.pop(key) for key in _PUSH_ARGUMENTS if key in kwargs}
        before = _file_stamps(save_directory)
        super().save_pretrained(save_directory, *args, is_main_process=is_main_process, **kwargs)
        if self.item_vocabulary is not None and is_main_process:
            self.item_vocabulary.save(save_directory)
        if push_to_hub and is_main_process:
            # What this save wrote, as transformers pushes: a run's folder also holds its
            # checkpoint-N/ folders, training_args.bin and partial files.
            written = [
                name
                for name, stamp in _file_stamps(save_directory).items()
                if before.get(name) != stamp and not name.startswith(".")
            ]
            upload_folder(save_directory, allow_patterns=written, **hub)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        from transformers.utils import cached_file

        check_local_folder(pretrained_model_name_or_path)
        hub = {k: kwargs[k] for k in ("revision", "subfolder", "cache_dir", "token") if k in kwargs}
        check_model_type(pretrained_model_name_or_path, cls.config_class.model_type, hub)
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(
            pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
        )
        check_all_weights_loaded(pretrained_model_name_or_path, info)
        path = cached_file(
            pretrained_model_name_or_path,
            VOCABULARY_FILE,
            _raise_exceptions_for_missing_entries=False,
            **hub,
        )
        if path is not None:
            model.attach_item_vocabulary(cls.vocabulary_class.load(Path(path).parent))
        return (model, info) if wants_info else model

    def attach_item_vocabulary(self, vocabulary) -> None:
        expected = getattr(self.config, "num_items", len(vocabulary))
        if len(vocabulary) != expected:
            raise VocabularyMismatchError(
                f"an item vocabulary of {len(vocabulary)} items does not fit this model, which "
                f"scores {expected} items"
            )
        self.item_vocabulary = vocabulary
