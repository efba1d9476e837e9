"""No function in components/ or flows/ is more complex than 15 (McCabe's cyclomatic complexity).

Counted from the source with ast, as radon and mccabe count it: 1, plus one per if/elif, loop,
except clause, conditional expression, comprehension loop and condition, match case, and each extra
operand of and/or. A nested function is counted on its own, not in the function around it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 15
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def complexity(function: ast.AST) -> int:
    count = 1
    todo = list(ast.iter_child_nodes(function))
    while todo:
        node = todo.pop()
        if isinstance(node, FUNCTIONS):
            continue  # its own count
        if isinstance(node, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.IfExp, ast.match_case)):
            count += 1
        elif isinstance(node, ast.BoolOp):
            count += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            count += 1 + len(node.ifs)
        todo.extend(ast.iter_child_nodes(node))
    return count


def functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.AST]]:
    """(qualified name, node) for every function and method, nested ones included."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((prefix + node.name, node))
            found += functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            found += functions(node, f"{prefix}{node.name}.")
        else:
            found += functions(node, prefix)
    return found


def over_the_limit(paths: list[Path]) -> list[str]:
    return sorted(f"{path.relative_to(ROOT)}:{name} ({c})" for path in paths
                  for name, node in functions(ast.parse(path.read_text())) if (c := complexity(node)) > LIMIT)


def test_no_function_in_components_or_flows_is_more_complex_than_15():
    assert over_the_limit([p for d in ("components", "flows") for p in sorted((ROOT / d).rglob("*.py"))]) == []


def test_the_count_follows_mccabe(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "def f(x, ys):\n"
        "    if x and ys or not x:\n"          # 1 if + 2 boolean operands
        "        return [y for y in ys if y]\n"  # 1 loop + 1 condition
        "    for y in ys:\n"                      # 1
        "        try:\n"
        "            pass\n"
        "        except ValueError:\n"            # 1
        "            pass\n"
        "    def inner(z):\n"                     # counted on its own
        "        return 1 if z else 2\n"          # 1 (inner)
        "    return inner(x) if x else None\n")   # 1
    counts = {name: complexity(node) for name, node in functions(ast.parse(source.read_text()))}
    assert counts == {"f": 9, "f.inner": 2}
