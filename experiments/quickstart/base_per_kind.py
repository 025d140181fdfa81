"""The base model's accuracy per question kind on the built-in world's benchmark split.

    python experiments/quickstart/base_per_kind.py CACHE_DIR [--per-image 8]

Reads the newest ``train_base`` and ``collect`` / ``world`` folders of a run's stage cache
(``paths.cache_dir``), asks every benchmark image ``--per-image`` questions (one per kind it
allows, greedy, the downstream evaluation's code) and prints a markdown row per kind.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from genixer.evaluation.world_benchmark import benchmark_questions, evaluate_vqa
from genixer.models.llava.model import load_vlm, processor_for
from genixer.pipeline.artifacts import project_tokenizer, world_splits


def newest(cache: Path, stage: str) -> Path:
    folders = [p for p in (cache / stage).iterdir() if (p / "manifest.json").exists()]
    if not folders:
        raise SystemExit(f"no finished {stage} folder under {cache}")
    return max(folders, key=lambda p: (p / "manifest.json").stat().st_mtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--per-image", type=int, default=8)
    args = parser.parse_args()
    world, base = newest(args.cache, "world"), newest(args.cache, "train_base")
    tokenizer = project_tokenizer(newest(args.cache, "collect"))
    model = load_vlm(base / "model").eval()
    questions = benchmark_questions(world_splits(world)["benchmark"], args.per_image, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate_vqa(
            model,
            processor_for(model, tokenizer),
            questions,
            root=world,
            batch_size=64,
            max_new_tokens=8,
            answers_path=Path(tmp) / "answers.jsonl",
            model_id="base",
            metric="vqa",
        )
    print(f"base model {base.name}: {result['accuracy']} on {result['questions']} questions")
    print("| kind | accuracy |\n|---|---|")
    for kind, acc in result["per_category"].items():
        print(f"| `{kind}` | {acc:.2f} |")


if __name__ == "__main__":
    main()
