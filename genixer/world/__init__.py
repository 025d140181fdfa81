"""Image sources: the built-in procedural world and (later) real folders and collections."""

from genixer.world.base import SPLITS, WorldImage, load_image, safe_join
from genixer.world.scene import Obj, Scene, render
from genixer.world.shapes import ShapesWorld, read_index

__all__ = [
    "SPLITS",
    "Obj",
    "Scene",
    "ShapesWorld",
    "WorldImage",
    "load_image",
    "read_index",
    "render",
    "safe_join",
]
