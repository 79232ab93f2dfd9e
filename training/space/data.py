"""What the Space reads from a built REGEN folder: the split rows of each domain, the catalog,
and the dataset tab's plots (made by the same code as `regen dataset report` and `regen eval
rater`)."""

from __future__ import annotations

import hashlib
import os
from functools import cached_property, lru_cache
from pathlib import Path

from training.space.conversation import SpaceInputError

SPLITS = ("test", "validation", "train")
MAX_SEARCH_RESULTS = 20
MAX_USER_CHOICES = 500  # a dropdown of a whole split (100,000 users) would swamp the page


class SpaceData:
    def __init__(self, folder: str | os.PathLike, plots_dir: str | os.PathLike | None = None):
        self.folder = Path(folder)
        if not (self.folder / "README.md").is_file():
            raise FileNotFoundError(
                f"{self.folder} is not a built REGEN folder (no README.md): run `make demo` or "
                "`regen dataset build` first"
            )
        self.plots_dir = Path(plots_dir) if plots_dir else self.folder.parent / "space-plots"

    @cached_property
    def configs(self) -> list[str]:
        from regen_dataset.stats import configs_in_folder

        return configs_in_folder(self.folder)

    def domains(self) -> list[str]:
        """Domains with critiques (`office`, `clothing`) that this folder holds."""
        return [c for c in ("office", "clothing") if c in self.configs]

    @lru_cache(maxsize=16)  # noqa: B019 (one SpaceData per app, kept for its lifetime)
    def split(self, domain: str, split: str = "test"):
        import datasets

        if domain not in self.domains():
            raise SpaceInputError(f"unknown domain {domain!r}; this dataset has {self.domains()}")
        if split not in SPLITS:
            raise SpaceInputError(f"unknown split {split!r}; expected one of {SPLITS}")
        return datasets.load_dataset(os.fspath(self.folder), domain, split=split)

    @lru_cache(maxsize=16)  # noqa: B019
    def _user_index(self, domain: str, split: str) -> dict[str, int]:
        ids = self.split(domain, split)["user_id"]
        return {user_id: index for index, user_id in enumerate(ids)}

    def user_choices(self, domain: str, split: str = "test") -> list[tuple[str, str]]:
        """(label, user id) for the first `MAX_USER_CHOICES` users (any other can be typed):
        the label says how long the history is."""
        rows = self.split(domain, split)
        rows = rows.select(range(min(len(rows), MAX_USER_CHOICES)))
        lengths = [len(history) for history in rows.with_format("arrow")["history"].to_pylist()]
        return [
            (f"{user_id} ({length} purchases)", user_id)
            for user_id, length in zip(rows["user_id"], lengths, strict=True)
        ]

    def row(self, domain: str, user_id: str | None, split: str = "test") -> dict:
        if not user_id:
            raise SpaceInputError("Pick a user first.")
        index = self._user_index(domain, split).get(user_id)
        if index is None:
            raise SpaceInputError(f"There is no user {user_id!r} in the {domain} {split} split.")
        return self.split(domain, split)[index]

    @lru_cache(maxsize=4)  # noqa: B019
    def catalog(self, domain: str):
        """The domain's item vocabulary (the `*_items` config)."""
        from regen_models.items import ItemVocabulary

        return ItemVocabulary.from_dataset(os.fspath(self.folder), domain)

    def item(self, domain: str, item_id: str) -> dict:
        catalog = self.catalog(domain)
        if item_id not in catalog:
            raise SpaceInputError(f"Item {item_id!r} is not in the {domain} catalog.")
        return catalog.table.slice(catalog.index(item_id), 1).to_pylist()[0]

    def search(self, domain: str, query: str | None) -> list[dict]:
        """Catalog items whose id is `query`, or whose title holds every word of it."""
        words = (query or "").lower().split()
        if not words:
            raise SpaceInputError("Type an item id or words of a title to search the catalog.")
        catalog = self.catalog(domain)
        if query.strip() in catalog:
            return [self.item(domain, query.strip())]
        found = []
        for item in catalog.table.select(["item_id", "title"]).to_pylist():
            title = (item["title"] or "").lower()
            if all(word in title for word in words):
                found.append(self.item(domain, item["item_id"]))
                if len(found) == MAX_SEARCH_RESULTS:
                    break
        if not found:
            raise SpaceInputError(
                f"No item of the {domain} catalog matches {query.strip()!r} "
                f"(an item id, or words of a title)."
            )
        return found

    # -- the dataset tab's plots -----------------------------------------------------------

    @cached_property
    def _plots_of_this_build(self) -> Path:
        """The plots are kept per build of the folder (named by its build report): a folder
        built again gets its own, never the plots of the data it replaced."""
        report = self.folder / "build_report.json"
        source = report if report.is_file() else self.folder / "README.md"
        return self.plots_dir / hashlib.sha256(source.read_bytes()).hexdigest()[:16]

    def rater_plot(self, domain: str) -> Path | None:
        """The auto-rater score distribution of `domain` (None where the data carries none)."""
        from training.evaluate import rater_report

        path = self._plots_of_this_build / f"rater_{domain}.png"
        if not path.exists():
            try:
                rater_report(self.folder, domain, os.fspath(path.parent))
            except ValueError:  # no rater scores in this folder
                return None
        return path

    def stats_plot(self) -> Path:
        """Interactions per user, narrative lengths, critiques and item concentration."""
        from regen_dataset.stats import describe_folder

        path = self._plots_of_this_build / "regen_report.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            describe_folder(self.folder, self.domains(), os.fspath(path))
        return path
