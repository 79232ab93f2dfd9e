"""The fusion narrator of "Beyond Retrieval: Generating Narratives in Conversational Recommender
Systems": WALS and content vectors of a user's interactions as soft tokens before a causal LM's
prompt. Registered with the Auto classes, so that `AutoModel.from_pretrained(CKPT)` loads it;
trained by `training/train_fusion.py`."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from regen_models.fusion.configuration_fusion import ADAPTERS, SIGNALS, FusionConfig
from regen_models.fusion.modeling_fusion import FusionForCausalLM, FusionOutput

AutoConfig.register(FusionConfig.model_type, FusionConfig, exist_ok=True)
AutoModel.register(FusionConfig, FusionForCausalLM, exist_ok=True)
AutoModelForCausalLM.register(FusionConfig, FusionForCausalLM, exist_ok=True)

__all__ = ["ADAPTERS", "SIGNALS", "FusionConfig", "FusionForCausalLM", "FusionOutput"]
