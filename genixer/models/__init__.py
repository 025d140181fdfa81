"""Models: the project tokenizer, the chat processor, the LLaVA/Shikra generator, generation.

The Fuyu judge lives in :mod:`genixer.models.fuyu` (imported on its own: it is optional).
"""

from genixer.models.generation import SeededSampler, generate
from genixer.models.llava.model import (
    CLIP_MEAN,
    CLIP_STD,
    GenixerVLM,
    GenixerVLMConfig,
    build_vlm,
    freeze_unused_vision_parameters,
    load_vlm,
    num_image_tokens,
    processor_for,
    save_vlm,
)
from genixer.models.processor import IGNORE_INDEX, ChatProcessor
from genixer.models.tokenizer import SPECIAL_TOKENS, build_tokenizer, load_tokenizer, save_tokenizer

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "IGNORE_INDEX",
    "SPECIAL_TOKENS",
    "ChatProcessor",
    "GenixerVLM",
    "GenixerVLMConfig",
    "SeededSampler",
    "build_tokenizer",
    "build_vlm",
    "freeze_unused_vision_parameters",
    "generate",
    "load_tokenizer",
    "load_vlm",
    "num_image_tokens",
    "processor_for",
    "save_tokenizer",
    "save_vlm",
]
