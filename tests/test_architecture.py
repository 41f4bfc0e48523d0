"""The layout shows the design: layers, public faces, no private names across packages.

Layers, top to bottom (an import may go down or stay in its layer, never up):

1. ``cli``
2. ``pipeline``
3. the stages: ``revise``, ``judge``, ``evaluate``, ``train``, ``best_of_n``. A stage does
   not import another stage, except that ``evaluate``, ``train`` and ``best_of_n`` may use
   ``judge`` (win rates, the refusal judge, the judge as a reward)
4. ``jobs``, ``data``, ``constitution``, ``prompts``, ``scorers``, ``quality``
5. ``backends``, ``models``, ``config``, and the helpers ``errors``, ``progress``,
   ``resources``, ``_util``

Lazy imports inside functions count too. No module outside ``cli`` imports ``cai.cli``,
and no module reaches a private name (``_x``) of another package, by import or attribute.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CAI = Path(__file__).resolve().parents[1] / "cai"
LAYERS = [
    {"cli"},
    {"pipeline"},
    {"revise", "judge", "evaluate", "train", "best_of_n"},
    {"jobs", "data", "constitution", "prompts", "scorers", "quality"},
    {"backends", "models", "config", "errors", "progress", "resources", "_util", ""},
]
STAGE_MAY_USE = {"evaluate": {"judge"}, "train": {"judge"}, "best_of_n": {"judge"}}


def _layer(package: str) -> int:
    for i, names in enumerate(LAYERS):
        if package in names:
            return i
    raise AssertionError(f"package {package!r} is in no layer; add it to LAYERS")


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(CAI.rglob("*.py")):
        parts = list(path.relative_to(CAI.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) for every import of a cai module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cai"):
            names = [a.name for a in node.names]
            if node.module == "cai":  # from cai import progress, __version__
                for n in names:
                    found.append((node.lineno, f"cai.{n}" if n != "__version__" else "cai", []))
            else:
                found.append((node.lineno, node.module, names))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("cai"):
                    found.append((node.lineno, a.name, []))
    return found


def test_at_most_eight_modules_at_the_top():
    top = sorted(p.name for p in CAI.glob("*.py"))
    assert len(top) <= 8, top


def test_every_package_has_a_public_face():
    for init in CAI.glob("*/__init__.py"):
        tree = ast.parse(init.read_text())
        names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                 if isinstance(t, ast.Name)}  # fmt: skip
        assert "__all__" in names, f"{init} has no __all__"


def test_no_import_goes_up_a_layer():
    bad = []
    for module, path in _modules():
        mine = _package(module)
        for line, target, _ in _imports(path):
            theirs = _package(target)
            if theirs == mine:
                continue
            up = _layer(theirs) < _layer(mine)
            sideways_stage = _layer(theirs) == _layer(mine) == 2
            if up or (sideways_stage and theirs not in STAGE_MAY_USE.get(mine, set())):
                bad.append(f"{path.relative_to(CAI.parent)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_nothing_outside_cli_imports_the_cli():
    bad = [
        f"{path.relative_to(CAI.parent)}:{line}"
        for module, path in _modules()
        if _package(module) != "cli"
        for line, target, _ in _imports(path)
        if _package(target) == "cli"
    ]
    assert not bad, bad


def test_no_private_name_crosses_a_package():
    bad = []
    for module, path in _modules():
        mine = _package(module)
        for line, target, names in _imports(path):
            if _package(target) == mine:
                continue
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if private or any(p.startswith("_") and p != "_util" for p in target.split(".")):
                bad.append(f"{path.relative_to(CAI.parent)}:{line} {target} {private}")
        # attribute access on an imported module of another package: judge._p_first
        imported = {}
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cai"):
                for a in node.names:
                    imported[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("cai"):
                        imported[a.asname or a.name.split(".")[0]] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and _package(imported[node.value.id]) != mine
            ):
                bad.append(f"{path.relative_to(CAI.parent)}:{node.lineno} .{node.attr}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", sorted(p.parent.name for p in CAI.glob("*/__init__.py")))
def test_public_faces_import(package):
    import importlib

    mod = importlib.import_module(f"cai.{package}")
    missing = [n for n in getattr(mod, "__all__", []) if not hasattr(mod, n)]
    assert not missing, missing
