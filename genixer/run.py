"""The entry point: ``python -m genixer.run [overrides]`` / ``-m experiment=...``."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models load from local folders only
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from genixer.config.schema import check_config  # noqa: E402
from genixer.runs.finish import finish_run  # noqa: E402

log = logging.getLogger("genixer")


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    check_config(cfg)  # a bad value fails here, naming its key, before any run is tracked
    from genixer.pipeline.runner import run_pipeline  # torch, Lightning: only for a good config

    summary_path = finish_run(cfg, lambda: run_pipeline(cfg).summary)
    if summary_path is not None:  # None: a sweep's job failed, recorded; the sweep goes on
        print(summary_path)


if __name__ == "__main__":
    main()
