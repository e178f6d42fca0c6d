"""The documentation site builds with mkdocs --strict (no broken links, docstrings render)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (site / "index.html").is_file()
    api = (site / "api" / "chat-models" / "index.html").read_text()
    assert "from_huggingface" in api and "ChatHybrid" in api
    assert 'id="langchain_hybrid.ChatHybrid.cascade"' in api
    # Sphinx roles of the docstrings render as links (or code), never as their markup.
    roles = re.compile(r":(class|func|meth|attr|data|mod|exc|obj):`")
    literal = {
        str(page.relative_to(site)): len(roles.findall(page.read_text()))
        for page in site.rglob("*.html")
        if roles.search(page.read_text())
    }
    assert literal == {}
    link = r'<a class="autorefs autorefs-internal"[^>]*href="../routing/#langchain_hybrid.'
    assert re.search(link + 'RoutingPolicy"', api)
