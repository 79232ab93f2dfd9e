"""Inpainting: LLM backends, prompts and the runner that fill REGEN fields in Amazon Reviews."""
