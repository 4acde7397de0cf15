"""The host package's shape (docs/development.md, "Where things live"): no
import loops, and the service that runs on a store's host never reaches into
the developer's kit (sim/) or the benchmarks (bench/). Imports inside
functions count too: they run on the Pi all the same."""

from __future__ import annotations

import ast
from pathlib import Path

import loyalty_button

PACKAGE = Path(loyalty_button.__file__).parent
DEV_KIT = ("loyalty_button.sim", "loyalty_button.bench", "loyalty_button.fuzz")
# The command line is the one place every wing meets (thin, lazy imports).
ABOVE_THE_WINGS = ("loyalty_button.cli",)


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """The package's own modules that `name` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import x` may name a module x, or a name in the package.
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    found.add(f"{target}.{alias.name}")
                elif target in modules:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
    found.discard(name)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    modules = set(files)
    return {name: _imports(path, name, modules) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_host_package_has_no_import_loop():
    graph = import_graph()
    assert "loyalty_button.service.concentrator" in graph  # the walk found the package
    assert cycles(graph) == []


def test_the_store_service_never_imports_the_dev_kit():
    graph = import_graph()
    service = [m for m in graph if not m.startswith(DEV_KIT) and m not in ABOVE_THE_WINGS]
    assert len(service) > 30
    leaks = {m: sorted(t for t in graph[m] if t.startswith(DEV_KIT)) for m in service}
    assert {m: t for m, t in leaks.items() if t} == {}


def test_the_walk_sees_a_loop_and_a_leak(tmp_path: Path):
    # The checks above must be able to fail: a made-up package with a loop
    # (a -> b -> a, one of them inside a function) and a service module
    # importing the simulator.
    pkg = tmp_path / "loyalty_button"
    (pkg / "sim").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sim" / "__init__.py").write_text("")
    (pkg / "sim" / "store.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import x\n")
    (pkg / "c.py").write_text("from .sim.store import Store\n")
    graph = import_graph(pkg)
    assert cycles(graph) == [["loyalty_button.a", "loyalty_button.b"]]
    assert graph["loyalty_button.c"] == {"loyalty_button.sim.store"}


def test_every_lazy_command_names_a_module_that_has_its_entry_point():
    """cli.py imports a command's module only when it runs: a moved module
    (the re-zoning moved screens and advert_image) must not leave a command
    that fails with ModuleNotFoundError."""
    import importlib
    import re
    text = (PACKAGE / "cli.py").read_text(encoding="utf-8")
    found = re.findall(r'_lazy(_cli)?\("([\w.]+)"(?:, \w+, "(\w+)")?', text)
    assert len(found) >= 4 and any(name for *_, name in found)
    for cli_form, module, name in found:
        mod = importlib.import_module(f"loyalty_button.{module}")
        entry = "cli" if cli_form else (name or "main")
        assert callable(getattr(mod, entry, None)), f"loyalty_button.{module} has no {entry}()"
