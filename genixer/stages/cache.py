"""The stage cache: each stage's output folder is keyed by a hash of exactly what determines
it (its config, its inputs' keys, its code version), with a manifest written last.

A folder with a complete manifest is re-used; a folder without one is handed back to the
stage, which resumes what it can (generation) or starts over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


def config_hash(obj: object) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def git_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class StageResult:
    name: str
    key: str
    path: Path
    status: str  # "ran" or "reused"
    seconds: float
    info: dict = field(default_factory=dict)  # counts and metrics the stage reported

    def summary(self) -> dict:
        return {"status": self.status, "seconds": round(self.seconds, 2), "key": self.key}


class StageCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, name: str, key: str) -> Path:
        return self.root / name / key

    def key(self, name: str, version: int, config: object, inputs: dict[str, str]) -> str:
        return config_hash({"stage": name, "version": version, "config": config, "in": inputs})

    def run(
        self,
        name: str,
        version: int,
        config: object,
        inputs: dict[str, StageResult],
        fn: Callable[[Path], dict],
    ) -> StageResult:
        """Run ``fn(folder) -> info`` unless a complete result exists for this key."""
        key = self.key(name, version, config, {k: v.key for k, v in inputs.items()})
        folder = self.folder(name, key)
        manifest = folder / MANIFEST
        if manifest.exists():
            data = json.loads(manifest.read_text())
            if data.get("complete"):
                log.info("stage %s: reusing %s", name, folder)
                return StageResult(name, key, folder, "reused", 0.0, data.get("info", {}))
        folder.mkdir(parents=True, exist_ok=True)
        log.info("stage %s: running into %s", name, folder)
        start = time.perf_counter()
        info = fn(folder) or {}
        seconds = time.perf_counter() - start
        data = {
            "stage": name,
            "version": version,
            "key": key,
            "config": config,
            "inputs": {k: {"key": v.key, "path": str(v.path)} for k, v in inputs.items()},
            "code_version": git_version(),
            "seconds": seconds,
            "info": info,
            "complete": True,
        }
        tmp = folder / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        os.replace(tmp, manifest)
        return StageResult(name, key, folder, "ran", seconds, info)
