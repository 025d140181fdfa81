"""Memory: peak resident memory of the generate stage over N and over 10N images.

Each measurement is a fresh Python process (``python -m benchmarks.memory ...``) that loads
the generator from disk the way the pipeline does, generates for the first ``n`` pool images
into a fresh folder and reports its peak RSS (``getrusage`` ``ru_maxrss``, and ``VmHWM`` from
``/proc/self/status``). Records go to shards on disk as they are made, so the peak must not
grow with the number of images.

Loading the model allocates more, for a moment, than generation ever holds (transformers
materializes the weights once more), so the process-wide ``ru_maxrss`` would show the load,
not the stage. The peak is therefore reset (``/proc/self/clear_refs`` = 5) once the model is
loaded, and the row reports ``VmHWM`` after the stage: the peak while generating. Where the
reset is not allowed, ``ru_maxrss`` is used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import Row

REPO = Path(__file__).resolve().parents[1]


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(args: argparse.Namespace) -> dict:
    """Runs in the fresh process: load, generate, report peak memory (MiB)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from benchmarks.env import ban_tokens
    from genixer.models.llava.model import load_vlm, processor_for
    from genixer.models.tokenizer import load_tokenizer
    from genixer.pipeline.stages import generate as G
    from genixer.world.base import read_index

    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(Path(args.model) / "tokenizer")
    model = load_vlm(Path(args.model) / "model").eval()
    processor = processor_for(model, tokenizer)
    ban_tokens(model, [processor.eos_id])
    pool = read_index(args.world)["pool"][: args.n]
    reqs = G.requests(pool, 1, "generic", "bench", 0)
    decoding = {
        "temperature": args.temperature,
        "max_new_tokens": args.max_new_tokens,
        "top_p": None,
    }
    before = _proc_status_mb("VmRSS")
    reset = _reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        info = G.run_generation(
            model,
            processor,
            reqs,
            world=Path(args.world),
            folder=Path(tmp),
            decoding=decoding,
            batch_size=args.batch_size,
            shard_size=args.shard_size,
        )
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    hwm = _proc_status_mb("VmHWM")
    return {
        "n": args.n,
        "generated": info["generated"],
        "peak_mb": hwm if reset and hwm is not None else maxrss,
        "peak_is_generation_only": bool(reset and hwm is not None),
        "maxrss_mb": maxrss,
        "rss_before_generation_mb": before,
    }


def measure(
    world: Path,
    model_dir: Path,
    n: int,
    max_new_tokens: int,
    batch_size: int,
    shard_size: int,
    temperature: float,
    threads: int | None = None,
) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--world",
        str(world),
        "--model",
        str(model_dir),
        "--n",
        str(n),
        "--max-new-tokens",
        str(max_new_tokens),
        "--batch-size",
        str(batch_size),
        "--shard-size",
        str(shard_size),
        "--temperature",
        str(temperature),
    ]
    if threads:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed ({proc.returncode}):\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def memory_row(env, n: int, max_new_tokens: int, reps: int, threads: int | None = None) -> Row:
    """Peak RSS at N and at 10N images, ``reps`` fresh processes each.

    The N and 10N processes of one repetition run side by side: peak memory does not depend
    on the CPU they share, and it halves the wall time.
    """
    model_dir = env.save_generator(env.scratch("memory-model"))
    g = env.cfg.generate
    batch_size = min(int(g.batch_size), n)  # the same full batches at N and at 10N
    args = (int(max_new_tokens), batch_size, int(g.shard_size), float(g.temperature))
    results: dict[int, list[dict]] = {n: [], 10 * n: []}
    for _ in range(reps):
        procs = {k: measure(env.root, model_dir, k, *args, threads=threads) for k in results}
        for k, proc in procs.items():
            res = _result(proc)
            if res["generated"] != k:
                raise RuntimeError(f"memory child generated {res['generated']} of {k}")
            results[k].append(res)
    small = statistics.median(r["peak_mb"] for r in results[n])
    large = statistics.median(r["peak_mb"] for r in results[10 * n])
    before = statistics.median(r["rss_before_generation_mb"] or 0 for r in results[10 * n])
    whole = statistics.median(r["maxrss_mb"] for r in results[10 * n])
    scope = (
        "peak while generating (VmHWM reset after loading)"
        if all(r["peak_is_generation_only"] for v in results.values() for r in v)
        else "process peak (ru_maxrss)"
    )
    return Row(
        "memory: peak RSS of generation at 10N vs N images",
        large,
        small,
        1 / 1.2,
        "MiB",
        ratio=small / large,
        note=(
            f"N={n}, batch {batch_size}, {max_new_tokens} new tokens, fresh process each; "
            f"{scope}; RSS with the "
            f"model loaded ~{before:.0f} MiB, process peak incl. loading ~{whole:.0f} MiB"
        ),
        extra={f"peak_mb_at_{k}": [round(r["peak_mb"], 1) for r in v] for k, v in results.items()},
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--world", required=True)
    p.add_argument("--model", required=True, help="folder with model/ and tokenizer/")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--shard-size", type=int, default=512)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=None)
    print(json.dumps(child(p.parse_args(argv))))


if __name__ == "__main__":
    main()
