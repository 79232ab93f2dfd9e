"""LUMEN, registered with the Auto classes so that `AutoModel.from_pretrained(CKPT)` (or
`AutoModelForCausalLM`) loads it; trained by `training/train_lumen.py`."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from regen_models.lumen.configuration_lumen import LumenConfig
from regen_models.lumen.modeling_lumen import LumenForCausalLM, LumenGeneration, LumenOutput

AutoConfig.register(LumenConfig.model_type, LumenConfig, exist_ok=True)
AutoModel.register(LumenConfig, LumenForCausalLM, exist_ok=True)
AutoModelForCausalLM.register(LumenConfig, LumenForCausalLM, exist_ok=True)

__all__ = ["LumenConfig", "LumenForCausalLM", "LumenGeneration", "LumenOutput"]
