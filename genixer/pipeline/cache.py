"""The stage cache: each stage's output folder is keyed by a hash of exactly what determines
it (its config, its inputs' keys, its code version), with a manifest written last.

A folder with a complete manifest is re-used; a folder without one is handed back to the
stage, which resumes what it can (generation) or starts over.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from genixer.core.hashing import config_hash, plain

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
LOCK = ".lock"


def read_manifest(folder: Path) -> dict | None:
    """The folder's manifest if it says the stage finished, else None (absent, half-written
    or unreadable: the stage is run again)."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        log.warning("unreadable manifest %s (%s): running the stage again", path, err)
        return None
    return data if isinstance(data, dict) and data.get("complete") is True else None


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


def _launched_as_ranks() -> bool:
    """True in one of several processes of one job started by torchrun / srun: they enter
    each stage together (sharded generation, DDP training), so they must not lock it."""
    return any(int(os.environ.get(v, "1") or 1) > 1 for v in ("WORLD_SIZE", "SLURM_NTASKS"))


def _lock(handle, folder: Path) -> bool:
    """Take the folder's exclusive lock (waits while another process holds it). A file system
    without flock (some network mounts) gets a warning and no lock."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        return True
    except OSError as err:
        log.warning("no lock on %s (%s): processes sharing this cache may race", folder, err)
        return False


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
        """Run ``fn(folder) -> info`` unless a complete result exists for this key.

        Processes sharing one cache (parallel sweeps) take the folder's lock first: a second
        process asking for a stage another one is computing waits, then re-uses it.
        """
        key = self.key(name, version, config, {k: v.key for k, v in inputs.items()})
        folder = self.folder(name, key)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {"stage": name, "version": version, "key": key, "config": plain(config)}
        manifest["inputs"] = {k: {"key": v.key, "path": str(v.path)} for k, v in inputs.items()}
        if _launched_as_ranks():  # the ranks of one job run each stage together: no lock
            return self._run_locked(folder, manifest, fn)
        with open(folder / LOCK, "w") as lock:
            locked = _lock(lock, folder)
            try:
                return self._run_locked(folder, manifest, fn)
            finally:
                if locked:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _run_locked(self, folder: Path, manifest: dict, fn) -> StageResult:
        """Re-use the folder's complete result, or run ``fn`` and write the manifest last."""
        name, key = manifest["stage"], manifest["key"]
        data = read_manifest(folder)
        if data is not None:
            log.info("stage %s: reusing %s", name, folder)
            return StageResult(name, key, folder, "reused", 0.0, info=data.get("info", {}))
        log.info("stage %s: running into %s", name, folder)
        start = time.perf_counter()
        info = fn(folder) or {}
        seconds = time.perf_counter() - start
        data = manifest | {"code_version": git_version(), "seconds": seconds, "info": info}
        data["complete"] = True
        tmp = folder / f"{MANIFEST}.{os.getpid()}.tmp"  # ranks of one job never share it
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        os.replace(tmp, folder / MANIFEST)
        return StageResult(name, key, folder, "ran", seconds, info=info)
