"""The pipeline's stages, one module each, in the order they run (:func:`declared_stages`)."""

from __future__ import annotations

from genixer.filters.base import Filter
from genixer.pipeline.stage import Stage
from genixer.pipeline.stages.collect import Collect
from genixer.pipeline.stages.decontaminate import Decontaminate
from genixer.pipeline.stages.dedup import Dedup
from genixer.pipeline.stages.downstream import DownstreamBaseline, DownstreamSynthetic
from genixer.pipeline.stages.export import Export
from genixer.pipeline.stages.generate import Generate
from genixer.pipeline.stages.pairs import Pairs
from genixer.pipeline.stages.pretrain_vision import PretrainVision
from genixer.pipeline.stages.score import Score
from genixer.pipeline.stages.select import Select
from genixer.pipeline.stages.train_base import TrainBase
from genixer.pipeline.stages.train_filter import TrainFilter
from genixer.pipeline.stages.train_generator import TrainGenerator
from genixer.pipeline.stages.world import World


def declared_stages(filter_: Filter) -> list[Stage]:
    """Every stage of a run, in order; a stage whose key is None for the run's config is
    skipped (no vision pretraining for a checkpoint, no decontamination, no filter...)."""
    train_filter = TrainFilter(filter_)
    return [
        World(),
        Collect(),
        PretrainVision(),
        TrainBase(),
        Pairs(),
        TrainGenerator(),
        Decontaminate(),
        Generate(),
        Dedup(),
        train_filter,
        Score(filter_),
        Select(train_filter.name),
        Export(),
        DownstreamBaseline(),
        DownstreamSynthetic(),
    ]
