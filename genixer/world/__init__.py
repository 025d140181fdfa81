"""The built-in world's knowledge: scenes, the question bank, grounding facts; and what every
image source hands the pipeline (images with ids, in named splits)."""

from genixer.world.base import SPLITS, WorldImage, load_image, read_index, safe_join
from genixer.world.scene import Obj, Scene, render

__all__ = [
    "SPLITS",
    "Obj",
    "Scene",
    "WorldImage",
    "load_image",
    "read_index",
    "render",
    "safe_join",
]
