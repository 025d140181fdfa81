"""``python -m genixer.convert {llava-original,shikra} ...``: see :mod:`genixer.convert`."""

from __future__ import annotations

import argparse
import json
import os
import sys

DTYPES = ("float32", "float16", "bfloat16")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m genixer.convert",
        description="Convert original LLaVA-1.5 / Shikra checkpoints (safetensors) into the "
        "project's GenixerVLM folder format.",
    )
    sub = p.add_subparsers(dest="kind", required=True)
    llava = sub.add_parser("llava-original", help="liuhaotian/llava-v1.5-* release layout")
    llava.add_argument("source", help="the release folder (config.json with mm_* keys)")
    shikra = sub.add_parser("shikra", help="shikras/shikra-7b-delta-v1 layout (a delta)")
    shikra.add_argument("source", help="the delta folder (config.json with mm_* keys)")
    shikra.add_argument("--base", required=True, help="the LLaMA/Vicuna base the delta is for")
    for s in (llava, shikra):
        s.add_argument(
            "--vision-tower",
            required=True,
            help="transformers CLIP folder named by mm_vision_tower (config + safetensors)",
        )
        s.add_argument("--out", required=True, help="new output folder")
        s.add_argument("--tokenizer", help="tokenizer folder (default: the source folder)")
        s.add_argument("--dtype", choices=DTYPES, help="cast weights (default: keep)")
        s.add_argument("--max-shard-gb", type=float, default=5.0, help="output shard size")
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = _parser().parse_args(argv)
    common = {
        "vision_tower": args.vision_tower,
        "out": args.out,
        "tokenizer": args.tokenizer,
        "dtype": args.dtype,
        "max_shard_bytes": int(args.max_shard_gb * 2**30),
    }
    if args.kind == "llava-original":
        from genixer.models.llava.convert_llava import convert_llava_original

        report = convert_llava_original(args.source, **common)
    else:
        from genixer.models.llava.convert_shikra import convert_shikra

        report = convert_shikra(args.source, base=args.base, **common)
    print(json.dumps(report, indent=2, sort_keys=True))
    print(f"converted checkpoint: {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
