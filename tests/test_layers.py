"""The package's import structure, read from its source with ``ast`` (nothing is imported).

Floors, bottom to top; a module imports only from its own floor or below
(docs/design.md):

0. ``core/`` (pure torch: no fairseq, omegaconf or transformers) and ``metrics.py``;
1. ``adapters/`` (and ``hf/``), ``checkpoint.py``, ``commands.py``, ``resources.py``, ``output_files.py``, ``text_files.py``;
2. the applications: ``glue/``, ``mc/``, ``robustness/``, ``convert_hf/``,
   ``experiment/``, ``demo.py``, ``hydra_train.py``, and any new top-level module;
   one application imports another only along :data:`SIDEWAYS`;
3. ``fairseq_freelb/__init__.py``, which imports every module that registers with fairseq.

Also: no import cycle among the package's modules, no import of a package
module inside a function (the way a cycle used to be hidden), no folder scan
with ``importlib``, and no file over :data:`MAX_LINES` lines.
"""

import ast
from pathlib import Path
from typing import Dict, List, NamedTuple, Set, Tuple

PACKAGE = "fairseq_freelb"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

FLOOR_0 = {"core", "metrics"}
FLOOR_1 = {"adapters", "hf", "checkpoint", "commands", "resources", "output_files", "text_files", "multiseed"}
# Application -> application imports that are allowed (one direction only; never mc -> glue).
SIDEWAYS = {
    ("glue", "mc"),
    ("glue", "wsc"),
    ("wsc", "mc"),
    ("experiment", "glue"),
    ("experiment", "mc"),
    ("experiment", "convert_hf"),
    ("export_hf", "convert_hf"),
    ("demo", "experiment"),
}
# Third-party packages core/ must not import: it is the part of the method that runs without fairseq.
NOT_IN_CORE = ("fairseq", "fairseq_cli", "omegaconf", "hydra", "transformers")
MAX_LINES = 400


class Import(NamedTuple):
    source: str  # importing module
    target: str  # imported module (a package module, or the top-level name of a third-party one)
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_files() -> Dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = package_files()


def _resolve(node: ast.AST, source: str, is_package: bool) -> List[str]:
    """The modules an import statement names (package modules in full, others by their top-level name)."""
    if isinstance(node, ast.Import):
        return [alias.name if alias.name.startswith(PACKAGE + ".") or alias.name == PACKAGE
                else alias.name.split(".")[0] for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        anchor = source.split(".") if is_package else source.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    if not (base == PACKAGE or base.startswith(PACKAGE + ".")):
        return [base.split(".")[0]]
    # `from pkg import mod` names the module pkg.mod; `from mod import name` names mod.
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]


def imports_in(name: str, text: str, is_package: bool = False) -> List[Import]:
    """Every import statement of module ``name`` (source ``text``), with whether it runs inside a function."""
    tree = ast.parse(text)
    found: List[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _resolve(child, name, is_package):
                    found.append(Import(name, target, child.lineno, in_function))
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inner)

    visit(tree, False)
    return found


ALL_IMPORTS = [imp for name, path in MODULES.items()
               for imp in imports_in(name, path.read_text(encoding="utf-8"), path.name == "__init__.py")]


def own(imp: Import) -> bool:
    return imp.target == PACKAGE or imp.target.startswith(PACKAGE + ".")


def floor(module: str) -> Tuple[int, str]:
    """(floor, application or area) of a package module."""
    if module == PACKAGE:
        return 3, PACKAGE
    area = module.split(".")[1]
    if area in FLOOR_0:
        return 0, area
    if area in FLOOR_1:
        return 1, area
    return 2, area


def where(imp: Import) -> str:
    return f"{MODULES[imp.source].relative_to(ROOT.parent)}:{imp.line}: {imp.source} imports {imp.target}"


# --------------------------------------------------------------------------- the checks


def layer_violations(imports: List[Import]) -> List[str]:
    problems = []
    for imp in imports:
        if not own(imp):
            continue
        (low, area), (high, other) = floor(imp.source), floor(imp.target)
        if high > low:
            problems.append(f"{where(imp)}: floor {low} imports floor {high}")
        elif low == high == 2 and area != other and (area, other) not in SIDEWAYS:
            problems.append(f"{where(imp)}: application {area} may not import application {other}")
    return problems


def cycles(imports: List[Import]) -> List[List[str]]:
    """Every strongly connected group of two or more modules (or a module importing itself)."""
    graph: Dict[str, Set[str]] = {}
    for imp in imports:
        if own(imp) and not imp.in_function:
            graph.setdefault(imp.source, set()).add(imp.target)
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    groups: List[List[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return groups


def test_imports_only_run_down_the_floors():
    assert layer_violations(ALL_IMPORTS) == []


def test_no_import_cycle_among_package_modules():
    assert cycles(ALL_IMPORTS) == []


def test_no_package_module_is_imported_inside_a_function():
    hidden = [where(imp) for imp in ALL_IMPORTS if own(imp) and imp.in_function]
    assert hidden == []


def test_core_imports_no_fairseq_omegaconf_or_transformers():
    found = [where(imp) for imp in ALL_IMPORTS if imp.source.startswith(PACKAGE + ".core") and imp.target in NOT_IN_CORE]
    assert found == []


def test_registration_names_modules_instead_of_scanning_folders():
    scanners = [where(imp) for imp in ALL_IMPORTS if imp.target in ("importlib", "pkgutil")]
    assert scanners == []


def test_no_package_file_is_over_the_line_limit():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


# --------------------------------------------------------------------------- the checks can fail


def _imp(source: str, target: str, in_function: bool = False) -> Import:
    return Import(source, target, 1, in_function)


def test_the_checks_catch_what_they_are_for(monkeypatch):
    monkeypatch.setitem(MODULES, "fairseq_freelb.core.x", ROOT / "core" / "x.py")
    monkeypatch.setitem(MODULES, "fairseq_freelb.adapters.y", ROOT / "adapters" / "y.py")
    monkeypatch.setitem(MODULES, "fairseq_freelb.mc.z", ROOT / "mc" / "z.py")
    monkeypatch.setitem(MODULES, "fairseq_freelb.glue.w", ROOT / "glue" / "w.py")
    assert len(layer_violations([_imp("fairseq_freelb.core.x", "fairseq_freelb.adapters.y")])) == 1
    assert len(layer_violations([_imp("fairseq_freelb.adapters.y", "fairseq_freelb.mc.z")])) == 1
    assert len(layer_violations([_imp("fairseq_freelb.mc.z", "fairseq_freelb.glue.w")])) == 1
    assert len(layer_violations([_imp("fairseq_freelb.glue.w", "fairseq_freelb")])) == 1
    assert layer_violations([_imp("fairseq_freelb.glue.w", "fairseq_freelb.mc.z"),
                             _imp("fairseq_freelb.mc.z", "fairseq_freelb.adapters.y")]) == []
    loop = [_imp("fairseq_freelb.glue.w", "fairseq_freelb.mc.z"), _imp("fairseq_freelb.mc.z", "fairseq_freelb.glue.w")]
    assert cycles(loop) == [["fairseq_freelb.glue.w", "fairseq_freelb.mc.z"]]
    assert cycles(loop[:1]) == []


def test_the_parser_sees_relative_and_function_level_imports():
    text = ("from . import scoring\nfrom ..adapters import runtime\nimport fairseq.data\n"
            "def f():\n    from fairseq_freelb.glue import predict\n")
    found = imports_in("fairseq_freelb.mc.inference", text)
    assert [(i.target, i.in_function) for i in found] == [
        ("fairseq_freelb.mc.scoring", False),
        ("fairseq_freelb.adapters.runtime", False),
        ("fairseq", False),
        ("fairseq_freelb.glue.predict", True),
    ]
