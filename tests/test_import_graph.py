"""Imports flow one way: flows -> components, registry -> evaluate, and no module imports itself back.

Read from the source (ast), so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("components", "flows")
# the one app-layer module in components/: the melforge CLI, whose `run` and `schedule` commands
# start the Prefect flows (imported inside those commands only, so `melforge stage` never loads Prefect)
APP_LAYER = "components.cli"


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The melforge module an imported name lives in (``components.x.y.func`` -> ``components.x.y``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported dotted name, at module level?) for every import statement in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found += [(f"{base}.{alias.name}", id(node) in top) for alias in node.names]
    return found


def _graph() -> dict[str, set[str]]:
    return {m: {o for name, _ in _imports(m) if (o := _owner(name)) and o != m} for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_components_never_import_prefect_or_flows():
    offending = [(m, name) for m in MODULES if m.startswith("components") and m != APP_LAYER
                 for name, _ in _imports(m) if name.split(".")[0] in ("prefect", "flows")]
    assert offending == []


def test_the_cli_loads_prefect_only_inside_the_commands_that_run_flows():
    top_level = [name for name, at_top in _imports(APP_LAYER) if at_top and name.split(".")[0] in ("prefect", "flows")]
    assert top_level == []


# The layers, lowest first. A module may import its own layer and those below, never one above: the schema
# and the vocabularies know no stage, a stage knows no orchestrator. A module takes the layer of its longest
# listed prefix (components.gan.stage trains; the rest of components.gan are models).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("leaves", ("components", "components.config", "components.config_base", "components.config_training",
                "components.names", "components.metric_table", "components.profiles", "components.settings",
                "components.storage", "components.file_lock", "components.progress", "components.errors",
                "components.interrupts", "components.transient", "components.runtime", "components.provenance",
                "components.torchaudio_ops", "components.db_template", "components.stage_row",
                "components.vae.settings")),
    ("data stages", ("components.datasets", "components.ingest", "components.validate", "components.features",
                     "components.level")),
    ("models", ("components.models", "components.gan", "components.vocoder", "components.generation", "components.families",
                "components.vae")),
    ("training", ("components.train", "components.distill", "components.gan.stage", "components.gan.wgan_gp",
                  "components.vocoder.stage", "components.vocoder.losses", "components.vocoder.adversarial", "components.vae.stage",
                  "components.vocoder.quality")),
    ("evaluation", ("components.evaluate",)),
    ("registry", ("components.registry",)),
    ("commands", ("components.stages", "components.stage_process", "components.params_file", "components.tracking",
                  "components.reproduce",
                  "components.services", "components.stores", "components.run_lock", "components.generate_cli")),
    ("flows", ("flows",)),
    ("cli", (APP_LAYER,)),
)


def _names(prefix: str, module: str) -> bool:
    """Whether ``prefix`` names ``module``: itself or a module inside it (the root package only itself)."""
    return module == prefix or (prefix != "components" and module.startswith(prefix + "."))


def layer_of(module: str) -> int:
    """The index in LAYERS of the longest prefix naming ``module``."""
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if _names(prefix, module) and len(prefix) > best:
                best, found = len(prefix), index
    if found is None:
        raise KeyError(f"{module} is in no layer: add it to LAYERS")
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """(module, imported module, 'layer -> higher layer') for every import that points up the layers."""
    return sorted((m, d, f"{LAYERS[layer_of(m)][0]} -> {LAYERS[layer_of(d)][0]}")
                  for m, deps in graph.items() for d in deps if layer_of(d) > layer_of(m))


def test_every_module_has_a_layer():
    assert [m for m in MODULES if not any(_names(p, m) for _, ps in LAYERS for p in ps)] == []


def test_every_import_points_down_the_layers():
    assert upward_imports(_graph()) == []


def test_the_layer_check_finds_an_import_pointing_up():
    assert upward_imports({"components.config": {"components.gan.specs"}, "components.gan.specs": set()}) == [
        ("components.config", "components.gan.specs", "leaves -> models")]


def test_the_schema_imports_only_leaves():
    graph = _graph()
    schema = [m for m in graph if m.startswith("components.config")]
    assert schema and all(layer_of(d) == 0 for m in schema for d in graph[m])
