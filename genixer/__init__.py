"""genixer: multimodal LLMs as data generators (the Genixer pipeline)."""

__version__ = "0.1.0"
