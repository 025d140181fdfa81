"""``python -m benchmarks [--quick]``: every comparison, a table, ``results/latest.{json,md}``.

See ``benchmarks/README.md`` for what each comparison measures and against what.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("generation", "judge", "clip", "training", "memory", "scaling", "gpu")


@dataclass(frozen=True)
class Sizes:
    gen_images: int  # images of the generation comparison
    gen_tokens: int  # new tokens per image there (and in the GPU section)
    judge_samples: int
    clip_crops: int
    train_steps: int  # optimizer steps per repetition
    mem_n: int  # memory: N (and 10N) images
    scale_n: int  # scaling: N (and 4N, 16N) images
    scale_tokens: int
    gpu_tokens: int


# In memory and scaling N is one full batch (the batch is min(generate.batch_size, N)): a
# partly filled batch at N would have other activation sizes and other per-image costs.
QUICK = Sizes(48, 32, 128, 256, 4, 32, 32, 6, 32)
FULL = Sizes(128, 64, 256, 1024, 20, 128, 64, 16, 128)


def _quiet() -> None:
    """Lightning's per-Trainer banners would drown the table."""
    import warnings

    import lightning  # noqa: F401  (it sets its loggers' levels when imported)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "genixer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


def run(sections: list[str], sizes: Sizes, reps: int, work: Path, threads: int | None) -> list:
    import torch

    from benchmarks import generation, gpu, memory, scoring, training
    from benchmarks.env import make_env

    _quiet()  # after the imports: importing lightning sets its own log level

    if threads:
        torch.set_num_threads(threads)
    needs = {
        "generation": sizes.gen_images,
        "scaling": 16 * sizes.scale_n,
        "memory": 10 * sizes.mem_n,
        "gpu": 128,  # the largest batch of the GPU section
    }
    pool = max([4] + [needs[s] for s in sections if s in needs])
    env = make_env(work, pool=pool, judge=64)
    jobs = {
        "generation": lambda: generation.generation_rows(
            env, sizes.gen_images, sizes.gen_tokens, reps
        ),
        "judge": lambda: [scoring.judge_row(env, sizes.judge_samples, reps)],
        "clip": lambda: [scoring.clip_row(env, sizes.clip_crops, reps)],
        "training": lambda: [training.training_row(env, sizes.train_steps, reps)],
        "memory": lambda: [
            memory.memory_row(env, sizes.mem_n, sizes.scale_tokens, reps, threads=threads)
        ],
        "scaling": lambda: generation.scaling_rows(env, sizes.scale_n, sizes.scale_tokens, reps),
        "gpu": lambda: gpu.gpu_rows(env, sizes.gpu_tokens, reps),
    }
    rows = []
    for name in sections:
        start = time.perf_counter()
        new = jobs[name]()
        for row in new:
            ratio = f"{row.ratio:.3g}" if row.ratio is not None else "-"
            print(f"  {row.name}: ratio {ratio} (target {row.target}) {row.note}", flush=True)
        print(f"[{name}] {time.perf_counter() - start:.0f}s", flush=True)
        rows += new
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller sizes: a few minutes on 2 cores")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {SECTIONS}")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per row (>= 5)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of latest.json / latest.md")
    args = p.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    if args.reps < 1:
        p.error("--reps must be >= 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from benchmarks.harness import table, write_results

    sizes = QUICK if args.quick else FULL
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="genixer-bench-"))
    try:
        rows = run(sections, sizes, args.reps, work, args.threads)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - start
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (
        f"# genixer benchmarks\n\n"
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}\n"
        f"- command: `{command.strip()}`\n"
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, CUDA {torch.cuda.is_available()}\n"
        f"- each row: median of {args.reps} repetitions after a warm-up; "
        f"sizes {'quick' if args.quick else 'full'}: {sizes}\n"
        f"- wall time: {seconds:.0f} s; load average {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (other users of the machine)"
    )
    json_path, md_path = write_results(rows, args.out, header)
    print()
    print(table(rows))
    print(f"\nwrote {json_path} and {md_path} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
