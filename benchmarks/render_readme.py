"""README.md from docs/README.template.md and the measured figures in docs/figures.json.

Every figure the README quotes is a ``{name}`` in the template, its value in figures.json, which names
the section of docs/benchmarks.md it was measured in; the same value must appear there too, so the
README and the benchmarks cannot drift apart (tests/test_docs.py runs ``--check``).

    python benchmarks/render_readme.py           # rewrite README.md
    python benchmarks/render_readme.py --check   # exit 1 naming what differs
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE, FIGURES, README, BENCHMARKS = (ROOT / "docs" / "README.template.md", ROOT / "docs" / "figures.json",
                                         ROOT / "README.md", ROOT / "docs" / "benchmarks.md")
PLACEHOLDER = re.compile(r"\{([a-z0-9_]+)\}")
MAX_LINES = 150


def render(template: str, figures: dict[str, dict[str, str]]) -> str:
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(figures))
    if missing:
        raise KeyError(f"{TEMPLATE.name} uses figures that {FIGURES.name} lacks: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: figures[m.group(1)]["value"], template)


def section(markdown: str, title: str) -> str | None:
    """The text under the heading ``title`` (any level) up to the next heading of the same or a
    higher level; None when there is no such heading."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        level = len(line) - len(line.lstrip("#"))
        if level and line[level:].strip() == title:
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].startswith("#") and len(lines[j]) - len(lines[j].lstrip("#")) <= level), len(lines))
            return "\n".join(lines[i + 1:end])
    return None


def problems() -> list[str]:
    figures = json.loads(FIGURES.read_text())
    template, benchmarks = TEMPLATE.read_text(), BENCHMARKS.read_text()
    found = []
    text = render(template, figures)
    if README.read_text() != text:
        found.append(f"{README.name} is not the rendered {TEMPLATE.name}: run python benchmarks/render_readme.py")
    if text.count("\n") > MAX_LINES:
        found.append(f"{README.name} has {text.count(chr(10))} lines (at most {MAX_LINES}): move detail to docs/")
    for name, figure in figures.items():
        body = section(benchmarks, figure["section"])
        if body is None:
            found.append(f"{FIGURES.name}: {name} names a section {figure['section']!r} that {BENCHMARKS.name} lacks")
        elif figure["value"] not in body:
            found.append(f"{FIGURES.name}: {name} = {figure['value']!r} does not appear in {BENCHMARKS.name}'s "
                         f"section {figure['section']!r}")
        if f"{{{name}}}" not in template:
            found.append(f"{FIGURES.name}: {name} is not used by {TEMPLATE.name}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report differences instead of writing README.md")
    args = parser.parse_args()
    if args.check:
        found = problems()
        for line in found:
            print(line, file=sys.stderr)
        return 1 if found else 0
    text = render(TEMPLATE.read_text(), json.loads(FIGURES.read_text()))
    tmp = README.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(README)
    print(f"wrote {README} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
