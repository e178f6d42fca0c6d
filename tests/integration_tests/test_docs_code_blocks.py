"""Every ```python block of the docs (docs/**/*.md and README.md) runs.

Per page, the blocks run in order in one shared namespace, as a reader would paste them,
with ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` pointing at a fake OpenAI server on 127.0.0.1
that answers any request sensibly (tests/support/sensible_responder.py) and
``LANGSMITH_ENDPOINT``/``LANGSMITH_API_KEY`` pointing at a LangSmith capture server.
A failing block is reported with its page and line; its traceback points at the
Markdown line. Anything that is not runnable Python goes in ```bash or ```text blocks
(see docs/CONTRIBUTING-docs.md).
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.langsmith_capture import LangSmithCaptureServer
from tests.support.openai_server import FakeOpenAIServer
from tests.support.sensible_responder import sensible_reply

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\s*$")


@dataclass(frozen=True)
class CodeBlock:
    page: str
    line: int  # 1-based line of the block's first code line
    source: str


def python_blocks(path: Path) -> list[CodeBlock]:
    """The ```python blocks of a Markdown file, with the line each starts on."""
    blocks: list[CodeBlock] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    page = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None or not match["lang"]:
            i += 1
            continue
        indent, lang, start = len(match["indent"]), match["lang"], i + 1
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        if lang == "python":
            body = [line[indent:] for line in lines[start:i]]
            blocks.append(CodeBlock(page, start + 1, "\n".join(body) + "\n"))
        i += 1
    return blocks


def doc_pages() -> list[Path]:
    pages = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
    return [p for p in pages if python_blocks(p)]


def test_block_extraction_keeps_line_numbers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n- item\n\n  ```python\n  y = x\n  ```\n"
    )
    blocks = python_blocks(page)
    assert [(b.line, b.source) for b in blocks] == [(4, "x = 1\n"), (13, "y = x\n")]


@pytest.fixture
def docs_environment(
    langsmith_capture: LangSmithCaptureServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(responder=sensible_reply) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.delenv("OPENAI_ORGANIZATION", raising=False)
        yield server


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_page_code_runs(
    page: Path,
    docs_environment: FakeOpenAIServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Files a page writes land in a scratch folder; examples/ is there, as in a clone.
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCS_TMP", str(tmp_path))
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in python_blocks(page):
        # Padded so that tracebacks name the Markdown line of the failing code.
        code = compile("\n" * (block.line - 1) + block.source, block.page, "exec")
        try:
            exec(code, namespace)
        except Exception:
            pytest.fail(
                f"{block.page}: the ```python block at line {block.line} failed:\n"
                f"{traceback.format_exc()}"
            )
    assert not docs_environment.errors
    assert os.environ["OPENAI_BASE_URL"] == docs_environment.base_url
