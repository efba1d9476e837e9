"""Each DVC stage's code deps are exactly the code it runs: the import closure of its entry point.

The entry point of stage NAME is what ``components/stages.py``'s ``_NAME`` imports (read from the source
with ast, like the whole closure), or the module a family's own stage row names, so a change to any module a stage imports makes DVC re-run it, and a
change to a module it never imports does not. The schema modules are the one exception: params.yaml
holds every value they resolve, and DVC tracks those values as the stage's params.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from test_import_graph import MODULES, ROOT, _imports, _owner

# the schema and its vocabularies: their effect on a stage is params.yaml, which is always complete and resolved
SCHEMA = {"components.config", "components.config_base", "components.config_training", "components.names",
          "components.profiles", *(m for m in MODULES if m.endswith(".settings") and m != "components.settings")}


def entry_modules(stage: str) -> set[str]:
    """The stage's own entry point: the module its table row names by path (a family's own stage), else the
    modules ``components/stages.py``'s ``_<stage>`` function imports."""
    from components.stages import stage_row

    if isinstance(entry := stage_row(stage).entry, str):
        return {entry.partition(":")[0]}
    tree = ast.parse((ROOT / "components" / "stages.py").read_text())
    function = next((node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == f"_{stage}"), None)
    if function is None:
        raise KeyError(f"components/stages.py has no _{stage}")
    return {node.module for node in ast.walk(function) if isinstance(node, ast.ImportFrom) and node.module}


def closure(start: set[str]) -> set[str]:
    """Every melforge module ``start`` runs: its imports (at any depth, inside functions too) and the
    packages' ``__init__`` modules Python executes on the way."""
    seen: set[str] = set()
    todo = [m for name in start if (m := _owner(name))]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        if module in SCHEMA:
            continue  # what the schema imports serves validation; params.yaml carries its result
        parts = module.split(".")
        todo += [p for i in range(1, len(parts)) if (p := ".".join(parts[:i])) in MODULES]
        todo += [o for name, _ in _imports(module) if (o := _owner(name))]
    return seen


def package_data(modules: set[str]) -> set[str]:
    """Files other than Python that the closure's packages ship (templates): the code reads them."""
    folders = {MODULES[m].parent for m in modules if MODULES[m].name == "__init__.py"}
    return {str(p.relative_to(ROOT)) for folder in folders for p in folder.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
            and any(m.startswith(".".join(p.parent.relative_to(ROOT).parts)) for m in modules)}


def expected_deps(stage: str) -> list[str]:
    """The code deps dvc.yaml should declare for ``stage``: a folder where the stage runs every file in
    it, else each file."""
    modules = closure(entry_modules(stage)) - SCHEMA - {"components"}
    files = {str(MODULES[m].relative_to(ROOT)) for m in modules} | package_data(modules)
    deps = set(files)
    for folder in sorted({Path(f).parent for f in files}, key=lambda p: len(p.parts)):
        if folder == Path("components") or any(str(folder).startswith(d + "/") for d in deps if not d.endswith(".py")):
            continue
        inside = {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*")
                  if p.is_file() and p.suffix != ".pyc" and "__pycache__" not in p.parts}
        if inside <= files:
            deps = {d for d in deps if not d.startswith(f"{folder}/")} | {str(folder)}
    return sorted(deps)


def declared_deps(stage: str) -> list[str]:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    spec = spec.get("do", spec)
    return sorted(d for d in spec.get("deps", []) if str(d).startswith(("components/", "flows/")))


STAGES = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_s_code_deps_are_the_import_closure_of_its_entry_point(stage):
    expected = expected_deps(stage)
    assert declared_deps(stage) == expected, (
        f"dvc.yaml's stage {stage!r} should list exactly these code deps (python tests/test_dvc_deps.py writes them):\n"
        + "\n".join(f"        - {d}" for d in expected))


def test_the_closure_follows_imports_inside_functions_and_package_inits():
    modules = closure({"components.vocoder.stage"})
    assert {"components.train.loop", "components.features.griffinlim", "components.vocoder"} <= modules
    assert "components.evaluate.stage" not in modules


def test_a_folder_stands_for_its_files_only_when_the_stage_runs_all_of_them():
    deps = expected_deps("train")
    assert "components/models" in deps  # every model module reaches the teacher
    assert "components/features" not in deps and "components/features/mel.py" in deps


def rewrite_dvc_yaml(path: Path = ROOT / "dvc.yaml") -> list[str]:
    """Replace each stage's code deps in dvc.yaml by its closure, in place (comments and the other deps
    kept; written to a temporary file, then renamed). Returns the stages whose deps changed."""
    lines = path.read_text().splitlines(keepends=True)
    changed, out, stage, i = [], [], None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("  ") and not line.startswith("   ") and line.rstrip().endswith(":"):
            stage = line.strip().rstrip(":")
        stripped = line.strip()
        if stage in STAGES and stripped.startswith("- ") and stripped[2:].startswith(("components/", "flows/")):
            indent = line[: len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip()[2:].startswith(("components/", "flows/")):
                block.append(lines[i].strip()[2:])
                i += 1
            expected = expected_deps(stage)
            changed += [stage] if block != expected else []
            out += [f"{indent}- {dep}\n" for dep in expected]
            continue
        out.append(line)
        i += 1
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(out))
    temporary.replace(path)
    return changed


if __name__ == "__main__":  # python tests/test_dvc_deps.py: make dvc.yaml's code deps the closures again
    print("rewrote the code deps of:", ", ".join(rewrite_dvc_yaml()) or "nothing (already current)")


def test_the_rewriter_restores_the_closures_and_keeps_everything_else(tmp_path):
    original = (ROOT / "dvc.yaml").read_text()
    stale = original.replace("      - components/vae/stage.py\n", "", 1).replace(
        "      - components/vae/model.py\n", "      - components/vae/model.py\n      - components/cli.py\n", 1)
    (tmp_path / "dvc.yaml").write_text(stale)
    assert rewrite_dvc_yaml(tmp_path / "dvc.yaml") == ["vae"]
    assert (tmp_path / "dvc.yaml").read_text() == original
    assert rewrite_dvc_yaml(tmp_path / "dvc.yaml") == []
