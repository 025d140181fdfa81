"""Converters from public datasets' own file formats into labeled samples of the 9 tasks
(the paper's instruction data collection). ``world=collection`` mixes them."""

from __future__ import annotations

from genixer.sources.datasets.base import ConversionLedger, Converter, Sample, Skip
from genixer.sources.datasets.gpt4gen import GPT4GenBoxCoT, GPT4GenRD
from genixer.sources.datasets.llava import LLaVAInstruct
from genixer.sources.datasets.pointing import PointQALocal, Visual7WPointing
from genixer.sources.datasets.refer import RefCOCO, VGRegions
from genixer.sources.datasets.vqa import AOKVQA, GQA, POPE, VQAv2

CONVERTERS: dict[str, type[Converter]] = {
    c.name: c
    for c in (
        VQAv2,
        GQA,
        POPE,
        AOKVQA,
        LLaVAInstruct,
        RefCOCO,
        VGRegions,
        PointQALocal,
        Visual7WPointing,
        GPT4GenBoxCoT,
        GPT4GenRD,
    )
}


def get_converter(name: str) -> type[Converter]:
    try:
        return CONVERTERS[name]
    except KeyError:
        raise ValueError(f"unknown converter {name!r}; known: {sorted(CONVERTERS)}") from None


__all__ = ["CONVERTERS", "Converter", "Sample", "Skip", "ConversionLedger", "get_converter"]
