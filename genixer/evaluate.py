"""Run a trained model on a benchmark and score it: ``python -m genixer.evaluate``.

Three commands (the first is the default)::

    # answer a LLaVA-format question file (jsonl: question_id, image, text), write the
    # answers file (jsonl: question_id, prompt, text, answer_id, model_id, metadata) and the
    # metrics json; with --benchmark/--annotations the answers are scored too
    python -m genixer.evaluate --model-path MODEL [--tokenizer-path TOK] \\
        --question-file q.jsonl --image-folder IMAGES --answers-file answers.jsonl \\
        [--benchmark vqav2 --annotations v2_..._questions.json v2_..._annotations.json]

    # a benchmark's own files -> a LLaVA-format question file
    python -m genixer.evaluate prepare --benchmark gqa --annotations testdev_balanced_questions.json \\
        --question-file gqa.jsonl [--image-folder IMAGES (MMBench writes its images there)]

    # score an answers file (e.g. written by LLaVA's own eval scripts)
    python -m genixer.evaluate score --benchmark pope --annotations coco_pope_*.json \\
        --answers-file answers.jsonl

MODEL is a project VLM folder (``save_vlm``, a converted original release, or llava-hf), or
with ``--family hf`` any transformers image-text-to-text chat model (Qwen2.5-VL, ...);
the tokenizer comes from the model folder unless ``--tokenizer-path`` names another (the
pipeline keeps it in the collect stage's ``tokenizer/``). Answers are greedy by default.
A re-run with the same answers file resumes: questions already answered are kept. Rows
that cannot be used (bad question rows, missing images, prompts over the length limit) are
left out and counted in the metrics and in ``<answers>.skipped.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger("genixer.evaluate")

DTYPES = ("float32", "bfloat16", "float16")


def _add_benchmark_args(p: argparse.ArgumentParser, required: bool) -> None:
    from genixer.evaluation.benchmarks import BENCHMARKS

    p.add_argument("--benchmark", choices=sorted(BENCHMARKS), required=required)
    p.add_argument("--annotations", nargs="+", default=[], help="the benchmark's own files")
    p.add_argument("--split", default="test", help="ScienceQA split (default test)")
    p.add_argument(
        "--box-frame",
        choices=("original", "padded"),
        default="original",
        help="REC: the frame the model's boxes are normalized to",
    )


def _parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m genixer.evaluate{'' if command == 'run' else ' ' + command}"
    )
    if command == "run":
        p.add_argument("--model-path", required=True)
        p.add_argument("--tokenizer-path", help="default: the model folder")
        p.add_argument(
            "--family",
            choices=("genixer", "hf"),
            default="genixer",
            help="hf: any transformers image-text-to-text chat model (its own processor)",
        )
        p.add_argument("--question-file", required=True)
        p.add_argument("--image-folder", required=True)
        p.add_argument("--answers-file", required=True)
        p.add_argument("--metrics-file", help="default: <answers-file stem>.metrics.json")
        p.add_argument(
            "--model-id", help="written into each answer (default: the model folder name)"
        )
        p.add_argument("--batch-size", type=int, default=16)
        p.add_argument("--max-new-tokens", type=int, default=64)
        p.add_argument("--temperature", type=float, default=0.0)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="cuda" if _cuda() else "cpu")
        p.add_argument("--dtype", choices=DTYPES, default="float32")
        _add_benchmark_args(p, required=False)
    elif command == "prepare":
        _add_benchmark_args(p, required=True)
        p.add_argument("--question-file", required=True)
        p.add_argument("--image-folder", help="where inline images (MMBench) are written")
    else:
        _add_benchmark_args(p, required=True)
        p.add_argument("--answers-file", required=True)
        p.add_argument("--metrics-file", help="default: <answers-file stem>.metrics.json")
    return p


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _metrics_path(args) -> Path:
    if args.metrics_file:
        return Path(args.metrics_file)
    answers = Path(args.answers_file)
    return answers.with_name(f"{answers.stem}.metrics.json")


def _score(args, answers_path: Path) -> dict | None:
    from genixer.evaluation.benchmarks import load_benchmark
    from genixer.evaluation.runner import read_answers, score

    if not args.benchmark:
        return None
    if not args.annotations:
        raise SystemExit(f"--benchmark {args.benchmark} needs --annotations to score")
    items, ledger = load_benchmark(args.benchmark, args.annotations, args.split)
    answers, bad_rows = read_answers(answers_path)
    result = score(args.benchmark, items, answers, args.box_frame)
    result["skipped_ground_truth"] = dict(ledger.counts)
    result["skipped_answer_rows"] = dict(bad_rows)
    return result


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def prepare(args) -> int:
    from genixer.evaluation.benchmarks import load_benchmark
    from genixer.evaluation.runner import write_questions

    items, ledger = load_benchmark(args.benchmark, args.annotations, args.split)
    counts = write_questions(items, args.question_file, args.image_folder)
    skipped = dict(ledger.counts)
    for reason, n in counts["ledger"].counts.items():
        skipped[reason] = skipped.get(reason, 0) + n
    print(json.dumps({"questions": counts["questions"], "skipped": skipped}, sort_keys=True))
    print(f"question file: {os.path.abspath(args.question_file)}")
    return 0


def score_only(args) -> int:
    result = _score(args, Path(args.answers_file))
    path = _metrics_path(args)
    _write_json(path, result)
    print(json.dumps(result, indent=2, sort_keys=True))
    print(f"metrics: {os.path.abspath(path)}")
    return 0


def run(args) -> int:
    from genixer.evaluation.answering import answer_questions

    t0 = time.perf_counter()
    info = answer_questions(
        model_path=args.model_path,
        tokenizer_path=args.tokenizer_path,
        question_file=args.question_file,
        image_folder=args.image_folder,
        answers_file=args.answers_file,
        model_id=args.model_id,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        family=args.family,
    )
    metrics = {"answering": info, "seconds": round(time.perf_counter() - t0, 2)}
    scored = _score(args, Path(args.answers_file))
    if scored is not None:
        metrics.update(scored)
    path = _metrics_path(args)
    _write_json(path, metrics)
    print(json.dumps(metrics, indent=2, sort_keys=True))
    print(f"answers: {os.path.abspath(args.answers_file)}")
    print(f"metrics: {os.path.abspath(path)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in ("prepare", "score", "run") else "run"
    args = _parser(command).parse_args(argv)
    return {"run": run, "prepare": prepare, "score": score_only}[command](args)


if __name__ == "__main__":
    sys.exit(main())
