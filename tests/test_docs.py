"""The README is short and its figures are the benchmarks': rendered from docs/README.template.md and
docs/figures.json, each figure also present in docs/benchmarks.md (benchmarks/render_readme.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_current_short_and_agrees_with_the_benchmarks():
    check = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render_readme.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_the_check_catches_a_figure_the_benchmarks_do_not_hold(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import render_readme
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    for name in ("README.md", "docs/README.template.md", "docs/figures.json", "docs/benchmarks.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text())
    figures = tmp_path / "docs" / "figures.json"
    monkeypatch.setattr(render_readme, "TEMPLATE", tmp_path / "docs" / "README.template.md")
    monkeypatch.setattr(render_readme, "FIGURES", figures)
    monkeypatch.setattr(render_readme, "README", tmp_path / "README.md")
    monkeypatch.setattr(render_readme, "BENCHMARKS", tmp_path / "docs" / "benchmarks.md")
    assert render_readme.problems() == []
    figures.write_text(figures.read_text().replace('"67.6 minutes"', '"57.6 minutes"'))
    found = render_readme.problems()
    assert any("57.6 minutes" in p and "benchmarks.md" in p for p in found)
    assert any("not the rendered" in p for p in found)  # README still says 67.6
