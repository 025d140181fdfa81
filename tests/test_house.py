"""The house rules, checked on the code itself: imports run one way, modules and functions
stay small, stages and filters keep their contracts (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "genixer"
# Bottom to top: a package imports only from packages before it (or itself).
LAYERS = (
    "core",
    "world",
    "tasks",
    "training",
    "models",
    "sources",
    "evaluation",
    "filters",
    "config",
    "pipeline",
    "runs",
)
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_POSITIONAL = 400, 60, 5


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer(dotted: str) -> int:
    """A module's rank; the entry points (``genixer/run.py``...) stand above every package."""
    parts = dotted.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):  # lazy imports inside functions count too
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("genixer"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("genixer")]
    return found


def test_imports_run_one_way():
    upward = []
    for path in modules():
        me = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for target in imports(ast.parse(path.read_text())):
            if layer(target) > layer(me):
                upward.append(f"{me} imports {target}")
    assert upward == []


def test_modules_and_functions_stay_small():
    too_big = []
    for path in modules():
        source = path.read_text()
        rel = path.relative_to(ROOT)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{rel}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            too_big += _oversized(node, rel)
    assert too_big == []


def _oversized(node: ast.AST, rel: Path) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        out = []
        lines = node.end_lineno - node.lineno + 1
        if lines > MAX_FUNCTION_LINES:
            out.append(f"{rel}:{node.lineno} {node.name}: {lines} lines")
        params = [a for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
        if len(params) > MAX_POSITIONAL:
            out.append(f"{rel}:{node.lineno} def {node.name}: {len(params)} positional")
        return out
    if isinstance(node, ast.Call) and len(node.args) > MAX_POSITIONAL:
        return [f"{rel}:{node.lineno} call {ast.unparse(node.func)}: {len(node.args)} positional"]
    return []


def test_the_size_rules_catch_what_they_should():
    src = "def f(a, b, c, d, e, g):\n    return g\n\nf(1, 2, 3, 4, 5, 6)\n"
    found = [m for n in ast.walk(ast.parse(src)) for m in _oversized(n, Path("x.py"))]
    assert found == ["x.py:1 def f: 6 positional", "x.py:4 call f: 6 positional"]


@pytest.mark.parametrize("filter_name", ["fuyu", "clip", "none", "oracle"])
def test_every_stage_declares_its_contract(compose_cfg, tmp_path, filter_name):
    from genixer.config.schema import PHASES
    from genixer.core.build import build_filter
    from genixer.filters.base import Filter
    from genixer.pipeline.stage import Stage
    from genixer.pipeline.stages import declared_stages

    cfg = compose_cfg([f"filter={filter_name}", f"paths.root_dir={tmp_path}"])
    filter_ = build_filter(cfg.filter)
    assert isinstance(filter_, Filter)
    stages = declared_stages(filter_)
    names = [s.name for s in stages]
    assert len(set(names)) == len(names)
    seen: set[str] = set()
    for stage in stages:
        assert isinstance(stage, Stage) and isinstance(stage.version, int), stage.name
        assert stage.phase in PHASES, stage.name
        for source in {**stage.reads, **stage.uses}.values():
            assert source in seen, f"{stage.name} reads {source}, which has not run before it"
        seen.add(stage.name)
    assert [PHASES.index(s.phase) for s in stages] == sorted(PHASES.index(s.phase) for s in stages)
    assert {s.phase for s in stages} == set(PHASES)


def test_no_code_branches_on_a_filter_name():
    """Filters are objects: what differs between them lives in their classes."""
    pattern = re.compile(
        r"""(\.name|filter_name|filter)\s*[!=]=\s*["'](fuyu|clip|none|oracle)["']"""
    )
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in modules()
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
