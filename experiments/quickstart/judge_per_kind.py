"""The filter's AUROC within each question kind: does it rank truth, or kinds?

    python experiments/quickstart/judge_per_kind.py CACHE_DIR

Reads the newest ``score`` and ``dedup`` folders of a stage cache (``paths.cache_dir``) and
prints, per kind (single-question records; ``multi`` for conversations), the records, their
oracle accuracy, the mean score and the AUROC of the scores against the oracle's verdicts.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from base_per_kind import newest  # this folder, on the path when run as a script

from genixer.evaluation.metrics import auroc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    args = parser.parse_args()
    scores = {}
    with open(newest(args.cache, "score") / "scores.jsonl") as f:
        for line in f:
            row = json.loads(line)
            scores[row["id"]] = row["score"]
    by_kind: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    with open(newest(args.cache, "dedup") / "records.jsonl") as f:
        for line in f:
            rec = json.loads(line)
            if rec["id"] in scores and rec["oracle"] is not None:
                kind = rec["turns"][0]["kind"] if len(rec["turns"]) == 1 else "multi"
                by_kind[kind].append((scores[rec["id"]], bool(rec["oracle"])))
    print("| kind | records | oracle accuracy | mean score | AUROC within the kind |")
    print("|---|---|---|---|---|")
    for kind, pairs in sorted(by_kind.items()):
        truth = [y for _, y in pairs]
        mixed = 0 < sum(truth) < len(truth)
        value = f"{auroc([s for s, _ in pairs], truth):.2f}" if mixed else "-"
        mean = sum(s for s, _ in pairs) / len(pairs)
        print(f"| `{kind}` | {len(pairs)} | {sum(truth) / len(pairs):.2f} | {mean:.2f} | {value} |")


if __name__ == "__main__":
    main()
