"""Shards of a sharded job (generation, scoring): which request goes where, atomic shard
files, and the merge that checks completeness.

A request's shard is a hash of its stable id (not its position in a list), so the shards,
and so the files already on disk, do not depend on the order requests were listed in, nor
on how many processes run them: process ``rank`` of ``world`` takes shards ``k`` with
``k % world == rank``. A shard file is written whole (temp file, fsync, rename, directory
fsync), so after a crash a shard file is either complete or absent; temp files left by a
killed process are ignored and removed. A re-run validates every shard file against the
ids it must hold, keeps the valid ones and redoes the rest. The merge refuses to write the
final file unless every expected id is there exactly once, and writes it sorted by id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

SHARD_DIR = "raw"


class IncompleteShardsError(RuntimeError):
    """The shards on disk do not hold every expected id exactly once."""


def shard_count(n_requests: int, shard_size: int) -> int:
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return max(1, -(-n_requests // shard_size))


def shard_of(request_id: str, n_shards: int) -> int:
    """The shard of a request: a stable hash of its id (same in every process and run)."""
    digest = hashlib.sha256(request_id.encode()).digest()
    return int.from_bytes(digest[:8], "little") % n_shards


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, rows: Iterable[dict]) -> int:
    """JSON lines to ``path``: a temp file named for this process, fsync, rename, dir fsync.

    The temp name carries the pid, so two processes writing the same path never share one
    temp file; each rename is atomic, so a reader sees a whole old or a whole new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
            n += 1
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return n


def read_rows(path: Path) -> list[dict]:
    """Every line of a JSONL file; a line that does not parse raises ``ValueError``."""
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.endswith("\n"):
                raise ValueError(f"{path}:{i}: truncated last line")
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{i}: not JSON ({err})") from err
    return rows


class ShardPlan:
    """The shards of one job: ``ids`` (unique) hashed into ``ceil(len / shard_size)`` shards.

    Shard ``k`` lives at ``<folder>/raw/shard-<k>.jsonl``; inside it, rows are sorted by id.
    """

    def __init__(self, ids: Iterable[str], shard_size: int, folder: str | Path) -> None:
        ids = list(ids)
        if len(set(ids)) != len(ids):
            raise ValueError("request ids must be unique")
        self.folder = Path(folder)
        self.dir = self.folder / SHARD_DIR
        self.n_shards = shard_count(len(ids), shard_size)
        self.members: dict[int, list[str]] = {k: [] for k in range(self.n_shards)}
        for rid in sorted(ids):
            self.members[shard_of(rid, self.n_shards)].append(rid)
        self.expected = frozenset(ids)

    def path(self, k: int) -> Path:
        return self.dir / f"shard-{k:05d}.jsonl"

    def shards_of_rank(self, rank: int, world: int) -> list[int]:
        return [k for k in range(self.n_shards) if k % world == rank]

    def clean_temp_files(self) -> int:
        """Remove temp files a killed writer left behind; returns how many."""
        n = 0
        if self.dir.exists():
            for tmp in self.dir.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                n += 1
        return n

    def is_done(self, k: int) -> bool:
        """Shard ``k``'s file exists and holds exactly its ids (a stale or foreign file is
        removed, so it is written again)."""
        path = self.path(k)
        if not path.exists():
            return False
        try:
            ids = [r["id"] for r in read_rows(path)]
        except (ValueError, KeyError, TypeError) as err:
            log.warning("shard %s is unreadable (%s): it will be written again", path, err)
            path.unlink(missing_ok=True)
            return False
        if ids != self.members[k]:
            log.warning("shard %s does not hold its expected ids: written again", path)
            path.unlink(missing_ok=True)
            return False
        return True

    def pending(self, rank: int = 0, world: int = 1) -> list[int]:
        """This process's shards whose file is missing or invalid (empty shards count done)."""
        return [
            k for k in self.shards_of_rank(rank, world) if self.members[k] and not self.is_done(k)
        ]

    def write_shard(self, k: int, rows: list[dict]) -> None:
        ids = sorted(r["id"] for r in rows)
        if ids != self.members[k]:
            raise IncompleteShardsError(
                f"shard {k}: got {len(ids)} rows for {len(self.members[k])} expected ids"
            )
        write_atomic(self.path(k), sorted(rows, key=lambda r: r["id"]))

    def merge(self, out: str | Path) -> list[dict]:
        """All shards -> one file sorted by id, written only when every expected id is there
        exactly once and nothing else is; returns the rows."""
        rows: list[dict] = []
        missing_shards = []
        for k in range(self.n_shards):
            if not self.members[k]:
                continue
            if not self.path(k).exists():
                missing_shards.append(k)
                continue
            rows += read_rows(self.path(k))
        ids = [r["id"] for r in rows]
        seen: set[str] = set()
        dupes = {i for i in ids if i in seen or seen.add(i)}
        missing = self.expected - seen
        extra = seen - self.expected
        if missing_shards or dupes or missing or extra:
            raise IncompleteShardsError(
                f"cannot merge {self.dir}: {len(missing_shards)} shard files missing, "
                f"{len(missing)} ids missing, {len(dupes)} duplicated, {len(extra)} unexpected"
            )
        rows.sort(key=lambda r: r["id"])
        write_atomic(Path(out), rows)
        return rows
