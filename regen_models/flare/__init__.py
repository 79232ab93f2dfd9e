"""FLARE, registered with the Auto classes so that `AutoModel.from_pretrained(CKPT)` loads it."""

from transformers import AutoConfig, AutoModel

from regen_models.flare.configuration_flare import FlareConfig
from regen_models.flare.modeling_flare import FlareModel, FlareOutput

AutoConfig.register(FlareConfig.model_type, FlareConfig, exist_ok=True)
AutoModel.register(FlareConfig, FlareModel, exist_ok=True)

__all__ = ["FlareConfig", "FlareModel", "FlareOutput"]
