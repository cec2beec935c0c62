"""The layering of README's "design in one picture", enforced on every import codeloop makes.

Every module under src/codeloop is parsed (imports at any depth, inside functions too: a lazy
import is still a dependency). A package may import its own layer or a lower one, never a higher
one, and packages must not import each other in a cycle; inside a package, modules must not
import each other in a cycle either (a lazy import that breaks an import-time cycle hides a
design cycle, it does not remove it).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "codeloop"

# Higher imports lower, never the reverse. Same rank: may import each other, but not in a cycle.
RANKS = {
    # base: data types, files, models, console
    "codeloop": 0, "problems": 0, "records": 0, "rundir": 0, "models": 0, "console": 0, "errors": 0,
    "linting": 0, "viz": 0,
    "steps": 0,  # the Step declaration (config fields with help, run function): every layer declares with it
    "distributed": 1,  # the Ray actor fleet, shared by execution and generation
    "execution": 2,
    "generation": 3, "scoring": 3,
    "resumable": 4,  # resumable sample-into / execute-into over run folders
    "training": 5, "evaluation": 5,
    "methods": 6,
    "cli": 7, "commands": 7, "pipeline": 7, "__main__": 7,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports_of(path: Path, module: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported codeloop module) for every import in the file, resolved to a module we have."""
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_pkg else 0)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` depends on pkg.sub when sub is a module, else on pkg itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known and "." in t:
                t = t.rpartition(".")[0]
            if t in known and t != module:
                out.append((node.lineno, t))
    return out


def graph() -> dict[str, list[tuple[int, str]]]:
    mods = source_modules()
    known = set(mods)
    return {m: imports_of(p, m, known) for m, p in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph (as a node list whose last node closes it), or None."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if colour.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in colour:
                found = visit(m)
                if found:
                    return found
        colour[n] = 2
        stack.pop()
        return None

    for n in sorted(edges):
        if n not in colour:
            found = visit(n)
            if found:
                return found
    return None


def where(g: dict[str, list[tuple[int, str]]], a: str, b: str, same_package: bool) -> str:
    """file:line of the imports behind the arrow a -> b (modules, or packages)."""
    mods = source_modules()
    node = (lambda m: m) if same_package else package_of
    return ", ".join(sorted({f"{mods[m].relative_to(SRC.parent)}:{line}" for m, deps in g.items()
                             for line, t in deps if node(m) == a and node(t) == b}))


def test_every_package_has_a_rank():
    missing = sorted({package_of(m) for m in source_modules()} - set(RANKS))
    assert not missing, f"give these packages a layer in RANKS: {missing}"


def test_imports_point_downward():
    mods = source_modules()
    bad = []
    for m, deps in graph().items():
        for line, t in deps:
            src, dst = package_of(m), package_of(t)
            if RANKS.get(dst, 0) > RANKS.get(src, 0):
                bad.append(f"{mods[m].relative_to(SRC.parent)}:{line}: {src} -> {dst} ({m} imports {t})")
    assert not bad, "imports from a lower layer to a higher one:\n" + "\n".join(bad)


def test_no_cycle_between_packages():
    g = graph()
    edges: dict[str, set[str]] = defaultdict(set)
    for m, deps in g.items():
        for _, t in deps:
            if package_of(m) != package_of(t):
                edges[package_of(m)].add(package_of(t))
    cycle = find_cycle(edges)
    assert cycle is None, "package cycle " + " -> ".join(cycle) + "\n" + "\n".join(
        f"  {a} -> {b}: {where(g, a, b, False)}" for a, b in zip(cycle, cycle[1:]))


def test_no_cycle_between_modules_of_a_package():
    g = graph()
    edges: dict[str, set[str]] = defaultdict(set)
    for m, deps in g.items():
        for _, t in deps:
            if package_of(m) == package_of(t):
                edges[m].add(t)
    cycle = find_cycle(edges)
    assert cycle is None, "module cycle " + " -> ".join(cycle) + "\n" + "\n".join(
        f"  {a} -> {b}: {where(g, a, b, True)}" for a, b in zip(cycle, cycle[1:]))
