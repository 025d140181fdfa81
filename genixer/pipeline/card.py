"""The exported dataset's card: ``README.md`` in the Hugging Face dataset-card format (a
YAML header: task categories, size category, license of the inputs where known, the
``configs`` naming the parquet files) and the provenance a reader needs: the generator, its
instruction templates and tau, the sampling, the filter and its selection, the counts at
each stage, why inputs were skipped and samples failed to parse, the oracle's accuracy where
the world knows the truth, and the command that made it. Written by the export stage."""

from __future__ import annotations

import json
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from genixer.core.record import Record
from genixer.tasks import get_task

CARD = "README.md"
# The license of the images a world hands the pipeline, by the world's target; any other
# world's images come from outside, under terms genixer cannot know.
WORLD_LICENSES = {
    "genixer.sources.shapes.ShapesWorld": (
        "other",
        "The images are rendered by genixer's built-in shapes world (no third-party content) "
        "and come under the genixer project's own terms.",
    ),
}
UNKNOWN_LICENSE = (
    "unknown",
    "The input images come from outside genixer (`world={world}`); their license is not "
    "known here: check the source's terms before publishing this dataset.",
)
TASK_CATEGORIES = {"generic": "visual-question-answering", "grounding": "object-detection"}


@dataclass
class CardFacts:
    """What the export stage knows about the run behind the export."""

    cfg: DictConfig
    kept: list[Record]
    infos: dict[str, dict]  # stage name -> the counts it reported
    keys: dict[str, str]  # stage name -> its cache key
    skipped: dict[str, dict[str, int]]  # stage -> reason -> count (the skip ledgers)
    formats: list[str]
    files: dict[str, str] = field(default_factory=dict)  # format -> its file(s), relative
    weights: str | None = None  # sha256 of the generator's safetensors (the model that wrote)


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M" if n < 1_000_000 else "1M<n<10M" if n < 10_000_000 else "n>10M"


def task_categories(tasks: list[str]) -> list[str]:
    groups = {get_task(t).group for t in tasks}
    return ["image-text-to-text"] + sorted({TASK_CATEGORIES[g] for g in groups})


def command_line() -> str:
    """The command that made the run: ``python -m genixer.run <overrides>`` under Hydra (a
    sweep's job: its own overrides), else the Python command line."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
        return shlex.join(["python", "-m", "genixer.run", *overrides])
    return shlex.join(["python", *sys.argv]) + "  (run from Python, not the CLI)"


def front_matter(facts: CardFacts) -> dict:
    cfg = facts.cfg
    tasks = sorted({r.task for r in facts.kept}) or list(cfg.generator.collection.tasks)
    target = str(cfg.world.get("_target_", ""))
    license_id = WORLD_LICENSES.get(target, UNKNOWN_LICENSE)[0]
    header = {
        "pretty_name": f"genixer synthetic data ({cfg.generator.name}, task={cfg.task.name})",
        "task_categories": task_categories(tasks),
        "size_categories": [size_category(len(facts.kept))],
        "license": license_id,
        "tags": ["synthetic", "genixer", *tasks],
    }
    if license_id == "other":
        header["license_name"] = "genixer-generated"
    if "hf" in facts.formats:
        header["configs"] = [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": facts.files["hf"]}],
            }
        ]
    return header


def _plain(node) -> object:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _json(value) -> str:
    return "`" + json.dumps(_plain(value), sort_keys=True) + "`"


def _model_type(folder: str) -> str:
    config = Path(folder) / "config.json"
    if not config.is_file():
        return "its config.json is not readable here"
    return f"model_type `{json.loads(config.read_text()).get('model_type')}`"


def _generator_lines(facts: CardFacts) -> list[str]:
    gen = facts.cfg.generator
    spec = _plain(gen.model) if gen.get("model") is not None else None
    lines = (
        [
            f"- architecture: `{gen.name}` built by `{spec.get('_target_')}`",
            f"- model spec: {_json(spec.get('spec'))}",
        ]
        if spec
        else [f"- architecture: `{gen.name}`, the checkpoint's own ({_model_type(gen.checkpoint)})"]
    )
    if gen.get("checkpoint"):
        lines.append(f"- weights: the checkpoint `{gen.checkpoint}`, fine-tuned in this run")
    key = facts.keys.get("train_generator")
    lines.append(f"- trained generator: stage `train_generator`, cache key `{key}`")
    if facts.weights:
        lines.append(f"- the generator's weights (safetensors), sha256: `{facts.weights}`")
    coll = gen.collection
    lines += [
        f"- instruction tasks: {_json(coll.tasks)}; samples per image {_json(coll.share)}",
        f"- tau (generic-instruction share) per task: {_json(coll.tau)}"
        + (f", tau_all = {coll.tau_all}" if coll.tau_all is not None else ""),
        "- instruction templates (genixer/tasks/templates.py) of the exported records: "
        + _json(dict(sorted(Counter(r.provenance.get("template_id") for r in facts.kept).items()))),
    ]
    return lines


def _sampling_lines(cfg: DictConfig) -> list[str]:
    g = cfg.generate
    return [
        f"- task asked: `{cfg.task.name}`; {g.per_image} samples per pool image; seed {cfg.seed}",
        f"- temperature {g.temperature}, question temperature {g.question_temperature}, "
        f"top_p {g.top_p}, max new tokens {g.max_new_tokens}, sampler `{g.sampler}`, "
        f"backend `{g.backend}`",
        f"- dedup: same_image={cfg.dedup.same_image}, corpus_max={cfg.dedup.corpus_max}",
    ]


def _filter_lines(facts: CardFacts) -> list[str]:
    f, s = facts.cfg.filter, facts.cfg.select
    select = facts.infos.get("select", {})
    score = facts.infos.get("score", {})
    return [
        f"- filter `{f.name}`: threshold {_json(f.get('threshold'))}, "
        f"band {_json(f.get('band'))}, stratify {_json(s.stratify)}, fraction {s.fraction}",
        f"- the filter's AUROC against the oracle: {score.get('auroc') or 'n/a'}",
        f"- kept {select.get('num_kept')} of {facts.infos.get('dedup', {}).get('num_records')} "
        f"deduplicated records ({select.get('num_passed')} passed the filter)",
    ]


def _count_lines(facts: CardFacts) -> list[str]:
    world = facts.infos.get("world", {}).get("images", {})
    gen, dedup = facts.infos.get("generate", {}), facts.infos.get("dedup", {})
    select = facts.infos.get("select", {})
    rows = [
        ("pool images", world.get("pool")),
        ("generated samples", gen.get("num_records", 0) + gen.get("parse_failures", 0)),
        ("parsed records", gen.get("num_records")),
        ("after dedup", dedup.get("num_records")),
        ("kept by the filter", select.get("num_kept")),
        ("exported", len(facts.kept)),
    ]
    lines = ["| stage | count |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    lines += [
        "",
        f"- parse failures by reason: {_json(gen.get('parse_failure_reasons', {}))}",
        f"- skipped inputs and dropped samples by stage and reason: {_json(facts.skipped)}",
        f"- oracle accuracy (share of records true of their image, where the world knows the "
        f"truth): generated {gen.get('oracle_accuracy')}, exported {select.get('oracle_accuracy')}",
        f"- why generated records were false: {_json(gen.get('oracle_errors', {}))}",
    ]
    return lines


def _file_lines(facts: CardFacts) -> list[str]:
    lines = [f"- `{name}`: {path}" for name, path in sorted(facts.files.items())]
    if "hf" in facts.formats:
        lines += [
            "",
            "Load it with the `datasets` library (images included, as an `Image` feature):",
            "",
            "```python",
            "from datasets import load_dataset",
            'ds = load_dataset("parquet", data_dir="hf")["train"]  # from this folder',
            "```",
        ]
    return lines


def dataset_card(facts: CardFacts, command: str) -> str:
    """The card's text."""
    header = front_matter(facts)
    target = str(facts.cfg.world.get("_target_", ""))
    world_name = target.rsplit(".", 1)[-1]
    license_text = WORLD_LICENSES.get(target, UNKNOWN_LICENSE)[1].format(world=world_name)
    sections = [
        ("Files", _file_lines(facts)),
        ("Generator", _generator_lines(facts)),
        ("Sampling", _sampling_lines(facts.cfg)),
        ("Filter and selection", _filter_lines(facts)),
        ("Counts", _count_lines(facts)),
        ("License", [license_text]),
        ("How it was made", ["```", command, "```"]),
    ]
    lines = ["---", yaml.safe_dump(header, sort_keys=False).rstrip(), "---", ""]
    lines += [
        f"# {header['pretty_name']}",
        "",
        f"{len(facts.kept)} synthetic samples written by a trained data generator "
        "(Genixer), checked by a filter, exported by genixer's export stage.",
    ]
    for title, body in sections:
        lines += ["", f"## {title}", "", *body]
    return "\n".join(lines) + "\n"


def write_card(facts: CardFacts, folder: Path, command: str | None = None) -> Path:
    path = folder / CARD
    path.write_text(dataset_card(facts, command or command_line()))
    return path
