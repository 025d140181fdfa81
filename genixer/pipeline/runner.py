"""The runner: the declared stages, run in order through the stage cache, and the summary
assembled from their results.

``run_pipeline(cfg)`` checks the config, builds the :class:`RunContext` and runs every stage
whose key says it is part of this configuration. A finished stage is re-used from the cache
(its folder is named by a hash of its key, its version and its inputs' keys); ``stop_after``
ends the run after a phase.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from omegaconf import DictConfig, OmegaConf

from genixer.config.schema import check_config
from genixer.core.build import build_filter, to_plain
from genixer.pipeline.cache import StageCache, StageResult
from genixer.pipeline.stage import RunContext, Stage
from genixer.pipeline.stages import declared_stages
from genixer.pipeline.summary import assemble_summary
from genixer.training.resume import drop_checkpoints

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineRun:
    """What a run leaves: its summary and each stage's result (by stage name, in run order)."""

    summary: dict
    results: Mapping[str, StageResult]


def make_context(cfg: DictConfig) -> RunContext:
    """The run's context over a read-only copy of ``cfg``: no stage changes what another reads."""
    frozen = cfg.copy()
    OmegaConf.set_readonly(frozen, True)
    cache = StageCache(cfg.paths.cache_dir)
    return RunContext(cfg=frozen, cache=cache, filter=build_filter(cfg.filter))


def run_pipeline(cfg: DictConfig) -> PipelineRun:
    """Check ``cfg``, run the stages it asks for, return the summary and the results."""
    check_config(cfg)
    start = time.perf_counter()
    ctx = make_context(cfg)
    stages = planned_stages(ctx)
    for stage in stages:  # inputs a stage would fail on are refused before any stage runs
        stage.check(ctx)
    results: dict[str, StageResult] = {}
    for stage in stages:
        result = run_stage(ctx, stage, results)
        if result is not None:
            results[stage.name] = result
    summary = assemble_summary(ctx, stages, results, time.perf_counter() - start)
    return PipelineRun(summary, results)


def planned_stages(ctx: RunContext) -> list[Stage]:
    """The declared stages up to the end of ``stop_after``'s phase, those of this
    configuration only (a key)."""
    stages, planned = declared_stages(ctx.filter), []
    for i, stage in enumerate(stages):
        if stage.key(ctx) is not None:
            planned.append(stage)
        if _stops_after(ctx.cfg.stop_after, stage, stages[i + 1 :]):
            break
    return planned


def run_stage(ctx: RunContext, stage: Stage, done: Mapping[str, StageResult]) -> StageResult | None:
    """Run (or re-use) one stage; None when its key says it is not part of this run."""
    key = stage.key(ctx)
    if key is None:
        return None
    inputs = {alias: done[source] for alias, source in stage.reads.items() if source in done}
    used = {alias: done[source] for alias, source in stage.uses.items() if source in done}
    fn = partial(stage.run, ctx, used | inputs)
    result = ctx.cache.run(stage.name, stage.version, to_plain(key), inputs, fn)
    log.info("stage %-22s %s (%.1fs) %s", stage.name, result.status, result.seconds, result.path)
    if result.status == "ran" and not ctx.cfg.checkpointing.keep:
        drop_checkpoints(result.path)  # the stage is complete: its resume points are not needed
    return result


def _stops_after(stop_after: str | None, stage: Stage, rest: list[Stage]) -> bool:
    """True after the last stage of the phase that ``stop_after`` names."""
    if stop_after is None or stage.phase != stop_after:
        return False
    return all(s.phase != stop_after for s in rest)
