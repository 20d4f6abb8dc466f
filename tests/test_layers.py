"""The package's import graph: arrows point down the layers, and nothing imports in a circle.

Every import counts, the ones inside functions too: a lazy import is still a
dependency, and hiding a cycle in a function body does not remove it.
"""
import ast
import re
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "siamfc"

# The same list as the README's layout section: a module may import from its own
# layer or any layer below it.
LAYERS = [
    {"errors", "files", "config", "geometry", "system", "registry", "workers", "cli", "stages", "shared"},
    {"data", "models"},
    {"tracking", "training"},
    {"deploy"},
    {"compression", "evaluation"},
    {"report"},
    {"jobs"},
    {"commands"},
]


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The siamfc modules ``path`` imports (``from . import x`` resolves to the submodule)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("siamfc")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("siamfc"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists()
                          or (PACKAGE.parent / sub.replace(".", "/")).is_dir() else target)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and the README")


def test_every_module_is_in_a_layer():
    for module in graph():
        if module != "siamfc":
            layer(module)


def test_no_import_points_up():
    upward = [f"{src} (layer {layer(src)}) imports {dst} (layer {layer(dst)})"
              for src, targets in graph().items() if src != "siamfc"
              for dst in targets if dst != "siamfc" and layer(dst) > layer(src)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    full = graph()
    g = {k: {d for d in v if d in full} for k, v in full.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The AST walk must resolve relative imports, or the tests above prove nothing."""
    deps = imports_of(PACKAGE / "evaluation" / "runner.py")
    assert "siamfc.tracking.factory" in deps and "siamfc.files" in deps
    assert layer("siamfc.jobs.quickstart") > layer("siamfc.report") > layer("siamfc.evaluation.runner")


def test_trackers_are_built_only_in_tracking():
    """Every caller goes through tracking.factory; only tracking/ and the tests construct one."""
    pattern = re.compile(r"\b(SiamFCTracker|OpenCVTracker|IdentityTracker)\(")
    offenders = [f"{p.relative_to(REPO)}:{n}" for p in list(PACKAGE.rglob("*.py")) + list((REPO / "tools").glob("*.py"))
                 if "tracking" not in p.relative_to(PACKAGE.parent).parts[:2]
                 for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
