"""Packaging hook; everything else is declared in pyproject.toml.

`dataset_card.md` lives at the repository root (the card is read there), but the builder renders
every folder's README.md from it, so an installed package needs it too: the wheel build copies it
into `regen_dataset/`, where `regen_dataset.export.card_template` looks first.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CARD = "dataset_card.md"


class BuildPyWithDatasetCard(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the card at the checkout's root
            return
        if not Path(CARD).is_file():
            raise FileNotFoundError(f"{CARD} must be at the project root to build the package")
        self.copy_file(CARD, str(Path(self.build_lib, "regen_dataset", CARD)))


setup(cmdclass={"build_py": BuildPyWithDatasetCard})
