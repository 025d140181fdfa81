"""Which parameters a training phase trains, found by module role for any vision-language
model: the project's LLaVA / Shikra, the Fuyu judge, and every transformers family.

transformers exposes a model's image encoder (``get_encoder(modality="image")``) and its
language model (``get_decoder()``, plus the output embeddings); the projector is what is
left. Families whose projector sits inside the image encoder (Qwen2-VL's patch merger)
have nothing left: there the projector is the encoder's top-level part that writes the
language model's width (the merger), found from the shapes, not from a table of names.

``trainable`` (a phase's config value): ``all``; ``projector`` (LLaVA's stage 1, feature
alignment); ``no_vision`` (projector and language model; the image encoder frozen).
"""

from __future__ import annotations

from torch import nn

TRAINABLE = ("all", "projector", "no_vision")


def _names(module: nn.Module, owner: nn.Module) -> set[str]:
    """Full parameter names (as ``owner.named_parameters`` gives them) of ``module``."""
    ids = {id(p) for p in module.parameters()}
    return {name for name, p in owner.named_parameters(remove_duplicate=False) if id(p) in ids}


def _image_encoder(model: nn.Module) -> nn.Module | None:
    encoder = model.get_encoder(modality="image") if hasattr(model, "get_encoder") else None
    if encoder is None or encoder is model or encoder is getattr(model, "base_model", None):
        return None  # no separate image encoder (Fuyu feeds patches to the decoder)
    return encoder


def _language(model: nn.Module) -> set[str]:
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    if decoder is model or decoder is getattr(model, "base_model", None):
        return set()
    names = _names(decoder, model)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return names | (_names(head, model) if head is not None else set())


def _width(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    text = config.get_text_config() if config is not None else None
    return getattr(text, "hidden_size", None)


def _projector_inside(encoder: nn.Module, width: int | None) -> nn.Module | None:
    """The encoder's last top-level part with linear layers, when its last linear writes
    the language model's width (a merger into the text embeddings)."""
    for child in reversed(list(encoder.children())):
        linears = [m for m in child.modules() if isinstance(m, nn.Linear)]
        if linears:
            return child if width is not None and linears[-1].out_features == width else None
    return None


def parameter_roles(model: nn.Module) -> dict[str, str]:
    """Each parameter's role: ``vision``, ``projector`` or ``language``."""
    encoder = _image_encoder(model)
    vision = _names(encoder, model) if encoder is not None else set()
    language = _language(model) - vision
    inside = _projector_inside(encoder, _width(model)) if encoder is not None else None
    if inside is not None and not (set(dict(model.named_parameters())) - vision - language):
        vision -= _names(inside, model)
    roles = {}
    for name, _ in model.named_parameters():
        roles[name] = (
            "vision" if name in vision else "language" if name in language else "projector"
        )
    return roles


def trainable_names(model: nn.Module, trainable: str) -> set[str]:
    """The parameters a phase with ``trainable`` trains."""
    if trainable not in TRAINABLE:
        raise ValueError(f"trainable must be one of {list(TRAINABLE)}, got {trainable!r}")
    roles = parameter_roles(model)
    keep = {"all": {"vision", "projector", "language"}, "projector": {"projector"}}
    wanted = keep.get(trainable, {"projector", "language"})
    return {name for name, role in roles.items() if role in wanted}
