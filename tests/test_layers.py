"""The package's modules import in layers, without circles (issue 24; DESIGN.md's
"Layers point down only: cli -> middleware -> adapters -> (_bridge, environ) -> _types").

Read from the source with ``ast``: every import counts, those under ``TYPE_CHECKING`` and
inside functions included, since a circle hidden there is still one a reader must follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import crossgate

ROOT = Path(crossgate.__file__).parent


def module_name(path: Path) -> str:
    parts = ["crossgate", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in ROOT.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The crossgate modules that module ``name`` imports (a package's ``__init__`` for
    ``from package import name`` where ``name`` is no module of its own)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def reaches(start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(GRAPH[name])
    return False


def test_the_graph_sees_the_imports_it_should() -> None:
    # The reader of this test's graph must itself be right for the checks below to mean
    # anything: a module known to import another is found to.
    assert "crossgate.adapters._wsgi_body" in GRAPH["crossgate.adapters._wsgi_input"]
    assert "crossgate.adapters._bridge" in GRAPH["crossgate.adapters.wsgi_to_asgi"]


def test_no_module_of_the_adapters_imports_one_that_imports_it_back() -> None:
    names = [n for n in MODULES if n.startswith("crossgate.adapters")]
    circles = sorted(
        f"{a} <-> {b}"
        for a in names
        for b in GRAPH[a]
        if b.startswith("crossgate.adapters")
        and not b.startswith(a + ".")
        and reaches(b, a)
        and not a.startswith(b + ".")  # a package's __init__ re-exporting its modules
    )
    assert circles == []


def test_layers_point_down_only() -> None:
    lower_than = {
        "crossgate.adapters": ("crossgate.middleware", "crossgate.cli", "crossgate.testing"),
        "crossgate.adapters._bridge": (
            "crossgate.adapters.wsgi_to_asgi",
            "crossgate.adapters.asgi_to_wsgi",
            "crossgate.adapters.lifespan",
        ),
        "crossgate.middleware": ("crossgate.cli",),
    }
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        for layer, above in lower_than.items()
        if name == layer or name.startswith(layer + ".")
        for target in targets
        if any(target == a or target.startswith(a + ".") for a in above)
    )
    assert wrong == []
