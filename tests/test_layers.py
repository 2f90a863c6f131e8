"""The layer rule, read from the source: every import points down.

runtime (the ground floor) imports none of our packages, with one declared exception: the torch
backend's lazy import of the trainer's checkpoint loader. trainer and bench stand on runtime;
export stands on trainer and runtime.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {"runtime": {"runtime"}, "trainer": {"runtime", "trainer"}, "bench": {"runtime", "bench"}, "export": {"runtime", "trainer", "export"}}
DECLARED_EXCEPTIONS = {("runtime/backends/torch_backend.py", "trainer")}
OURS = set(ALLOWED)


def _imports(path: Path) -> set[str]:
    """Top-level names of our packages that `path` imports, anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & OURS


def test_every_import_points_down():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for name in _imports(path) - allowed:
                if (rel, name) not in DECLARED_EXCEPTIONS:
                    wrong.append(f"{rel} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_the_declared_exception_is_lazy():
    tree = ast.parse((ROOT / "runtime/backends/torch_backend.py").read_text())
    top_level = {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    top_level |= {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    assert not top_level & {"torch", "trainer"}


def test_the_rule_catches_an_upward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from export.cli import app\n")
    assert _imports(bad) == {"export"}
