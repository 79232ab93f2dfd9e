"""The narrator: a base LM with a LoRA adapter that writes REGEN narratives (see
`modeling_narrator.Narrator`); trained by `training/train_narrator.py`."""

from regen_models.narrator.configuration_narrator import NarratorConfig
from regen_models.narrator.loading import BaseModelMismatchError
from regen_models.narrator.modeling_narrator import Narrator

__all__ = ["BaseModelMismatchError", "Narrator", "NarratorConfig"]
