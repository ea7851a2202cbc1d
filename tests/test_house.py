"""The package's house rules, checked: layers from the paper outward with imports pointing down, no
import cycle, modules of a readable length, and imports at the top of a module.

Each checker reads the source with :mod:`ast` (every import, those inside functions too) and is
tried first on a small synthetic tree, so that a checker which finds nothing cannot pass unseen.
"""
from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "senet_core"
MAX_LINES = 450

# Modules allowed over MAX_LINES, each with the reason it is one module.
LONG_MODULES: dict[str, str] = {}

# The layers, low to high: a module may import from its own layer or a lower one. A module's layer is
# the first entry its dotted name is, or starts with (component-wise); the package's __init__ is top.
LAYERS = (
    ("paper objects", ("senet_core.names", "senet_core.progress", "senet_core.paper", "senet_core.se",
                       "senet_core.complexity", "senet_core.models")),
    ("engine", ("senet_core.engine",)),
    ("study", ("senet_core.study",)),
    ("book", ("senet_core.book",)),
    ("top", ("senet_core.cli", "senet_core.__main__")),
)

# What may be imported inside a function: dependencies that are heavy to import or not installed with
# the package (the book's and the tests' extras), each such line carrying a comment saying why.
HEAVY_OPTIONAL = ("matplotlib", "pycocotools", "papermill", "nbformat", "IPython", "playwright")


def modules(package: Path) -> dict[str, Path]:
    """Every module of ``package`` by dotted name; a package's ``__init__.py`` is the package's name."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _import_sources(node: ast.ImportFrom, here: str) -> str | None:
    """The absolute module name a ``from ... import`` reads from; ``here`` is the importer's package."""
    if not node.level:
        return node.module
    base = here.split(".")
    if node.level - 1 >= len(base):
        return None
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(package: Path) -> dict[str, set[str]]:
    """Which modules of the package each module imports, at its top or inside its functions."""
    known = modules(package)
    graph = {}
    for name, path in known.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in known}
            elif isinstance(node, ast.ImportFrom):
                source = _import_sources(node, here)
                for alias in node.names:
                    if f"{source}.{alias.name}" in known:      # a submodule: `from . import plots`
                        targets.add(f"{source}.{alias.name}")
                    elif source in known:                      # a name defined in a module or __init__.py
                        targets.add(source)
        graph[name] = targets - {name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle, written out, per strongly connected group of modules (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for group in groups:
        start = min(group)
        came_from, frontier = {}, [start]
        while start not in came_from:                # breadth first, back round to start
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & group):
                    if w not in came_from:
                        came_from[w] = v
                        nxt.append(w)
            frontier = nxt
        path, v = [start], came_from[start]
        while v != start:
            path.append(v)
            v = came_from[v]
        cycles.append([start] + path[:0:-1] + [start])
    return sorted(cycles)


def layer(name: str) -> int | None:
    """The rank of module ``name`` in :data:`LAYERS`, or None when it belongs to none."""
    if name == "senet_core":
        return len(LAYERS) - 1
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return rank
    return None


def upward_imports(package: Path) -> list[str]:
    """Imports of a higher layer, and modules in no layer."""
    found = []
    for source, targets in sorted(import_graph(package).items()):
        here = layer(source)
        if here is None:
            found.append(f"{source} belongs to no layer (add it to one in LAYERS)")
            continue
        for target in sorted(targets):
            there = layer(target)
            if there is not None and there > here:
                found.append(f"{source} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]})")
    return found


def long_modules(package: Path, allowed: dict[str, str] = LONG_MODULES) -> list[str]:
    """Modules over :data:`MAX_LINES` lines (as ``wc -l`` counts) that are not allowed to be, and
    allowed ones that no longer need to be."""
    found = []
    for name, path in modules(package).items():
        lines = path.read_bytes().count(b"\n")
        if lines > MAX_LINES and name not in allowed:
            found.append(f"{name}: {lines} lines (at most {MAX_LINES})")
        elif lines <= MAX_LINES and name in allowed:
            found.append(f"{name}: {lines} lines, no longer needs its place in LONG_MODULES")
    return found


def local_imports(package: Path) -> list[str]:
    """Imports inside a function or class other than a commented one of :data:`HEAVY_OPTIONAL`."""
    found = []
    for name, path in modules(package).items():
        source = path.read_text(encoding="utf-8")
        comments = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                    if tok.type == tokenize.COMMENT}
        nested = {}
        for outer in ast.walk(ast.parse(source, str(path))):
            if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for node in ast.walk(outer):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        nested[node.lineno] = node
        for line, node in sorted(nested.items()):
            if isinstance(node, ast.Import):
                tops = {alias.name.split(".")[0] for alias in node.names}
            else:
                tops = {node.module.split(".")[0] if node.level == 0 and node.module else "."}
            if not tops <= set(HEAVY_OPTIONAL):
                found.append(f"{name}:{line}: {ast.unparse(node)} (move it to the top of the module)")
            elif not comments & set(range(node.lineno, node.end_lineno + 1)):
                found.append(f"{name}:{line}: {ast.unparse(node)} (say why it is local, in a comment)")
    return found


# The checkers on a synthetic tree: each finds what it is for, and nothing else.

def _tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / "senet_core" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "senet_core"


def test_a_cycle_is_found_through_relative_package_and_function_local_imports(tmp_path):
    package = _tree(tmp_path, {
        "__init__.py": "from .models import create_model\n",
        "models/__init__.py": "from .resnet import create_model\n",
        "models/resnet.py": "def create_model():\n    from senet_core.models import registry  # late\n",
        "models/registry.py": "from . import resnet\n",
        "engine/train.py": "from ..models import create_model\n",
        "engine/data.py": "def f():\n    from .train import g\n",
        "study/stats.py": "import senet_core.engine.data\n",
    })
    graph = import_graph(package)
    assert graph["senet_core.models"] == {"senet_core.models.resnet"}
    assert graph["senet_core.models.resnet"] == {"senet_core.models.registry"}
    assert graph["senet_core.models.registry"] == {"senet_core.models.resnet"}
    assert graph["senet_core.engine.train"] == {"senet_core.models"}
    assert graph["senet_core.engine.data"] == {"senet_core.engine.train"}
    assert graph["senet_core.study.stats"] == {"senet_core.engine.data"}
    assert import_cycles(graph) == [["senet_core.models.registry", "senet_core.models.resnet",
                                     "senet_core.models.registry"]]
    (package / "models" / "registry.py").write_text("x = 1\n")
    assert import_cycles(import_graph(package)) == []
    (package / "engine" / "train.py").write_text("from ..models import create_model\nfrom .data import f\n")
    assert import_cycles(import_graph(package)) == [["senet_core.engine.data", "senet_core.engine.train",
                                                     "senet_core.engine.data"]]


def test_an_upward_import_and_a_module_in_no_layer_are_found(tmp_path):
    package = _tree(tmp_path, {
        "__init__.py": "from .models import create_model\n",
        "models/__init__.py": "def create_model():\n    pass\n",
        "se.py": "",
        "engine/train.py": "from ..se import x\n\n\ndef f():\n    from ..study.results import y\n",
        "study/results.py": "from ..engine.train import f\nfrom ..book import chapters\n",
        "book/chapters.py": "from ..study import results\nfrom .. import cli\n",
        "cli.py": "from .book.chapters import show\nimport senet_core\n",
        "utils.py": "",
    })
    assert upward_imports(package) == [
        "senet_core.book.chapters (book) imports senet_core.cli (top)",
        "senet_core.engine.train (engine) imports senet_core.study.results (study)",
        "senet_core.study.results (study) imports senet_core.book.chapters (book)",
        "senet_core.utils belongs to no layer (add it to one in LAYERS)",
    ]
    assert layer("senet_core.models.resnet") == 0 and layer("senet_core.cli.flags") == len(LAYERS) - 1
    assert layer("senet_core.paper_tables") is None and layer("senet_core.study.spec") == 2


def test_a_long_module_is_found_and_an_exception_needs_its_length(tmp_path):
    package = _tree(tmp_path, {"se.py": "x = 1\n" * MAX_LINES, "paper.py": "x = 1\n" * (MAX_LINES + 1)})
    assert long_modules(package) == [f"senet_core.paper: {MAX_LINES + 1} lines (at most {MAX_LINES})"]
    assert long_modules(package, {"senet_core.paper": "one table a function"}) == []
    assert long_modules(package, {"senet_core.se": "why"}) == [
        f"senet_core.paper: {MAX_LINES + 1} lines (at most {MAX_LINES})",
        f"senet_core.se: {MAX_LINES} lines, no longer needs its place in LONG_MODULES"]


def test_a_local_import_is_found_unless_heavy_optional_and_commented(tmp_path):
    package = _tree(tmp_path, {"book/plots.py": (
        "import json\n\n\n"
        "def a():\n    import pandas as pd\n\n\n"
        "def b():\n    import matplotlib.pyplot as plt  # drawn only on demand\n\n\n"
        "def c():\n    from matplotlib import cm\n\n\n"
        "class D:\n    def e(self):\n        from .chapters import show  # a comment does not excuse it\n\n\n"
        "def f():\n    from pycocotools.coco import (  # the COCO API, for detection only\n        COCO)\n")})
    assert local_imports(package) == [
        "senet_core.book.plots:5: import pandas as pd (move it to the top of the module)",
        "senet_core.book.plots:13: from matplotlib import cm (say why it is local, in a comment)",
        "senet_core.book.plots:18: from .chapters import show (move it to the top of the module)",
    ]


# The real tree.

def test_no_import_cycle_between_the_packages_modules():
    cycles = import_cycles(import_graph(PACKAGE))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_point_down_the_layers():
    found = upward_imports(PACKAGE)
    assert not found, "\n".join(found)


def test_modules_are_at_most_450_lines():
    found = long_modules(PACKAGE)
    assert not found, "\n".join(found)


def test_imports_are_at_the_top_of_a_module():
    found = local_imports(PACKAGE)
    assert not found, "\n".join(found)
