"""The documentation: what ``scripts/docs`` (the strict MkDocs build) does not check itself.

The build checks links, anchors, snippets and cross-references inside ``docs/``. Here: the
README's links (GitHub renders it, MkDocs never sees it), its two set-up commands, and the
build-time helpers of ``scripts/mkdocs_hooks.py``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).parents[1]


def _hooks() -> ModuleType:
    pytest.importorskip("griffe")  # the docs extra, which dev includes
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", REPO / "scripts/mkdocs_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_links_point_to_files_that_exist() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert relative, "the README links to the docs"
    missing = [t for t in relative if not (REPO / t.partition("#")[0]).exists()]
    assert missing == []


def test_readme_sets_up_with_exactly_two_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^\$ (scripts/\w+)", readme, re.MULTILINE)
    assert commands == ["scripts/demo", "scripts/test"]


def test_every_docs_page_of_the_readme_is_in_the_nav() -> None:
    """A page linked from the README is one the site shows (mkdocs.yml's nav)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    pages = set(re.findall(r"\]\(docs/([^)#\s]+\.md)", readme))
    assert pages
    assert sorted(page for page in pages if f": {page}\n" not in nav) == []


def test_doctest_blocks_become_code_and_roles_plain_code() -> None:
    markdown = _hooks()._markdown_docstring(
        "Serve :class:`~crossgate.testing.Request` with :func:`call_wsgi`::\n"
        "\n"
        "    indented code stays\n"
        "\n"
        ">>> body = b'abc'[::-1]\n"
        "... \n"
        ">>> body\n"
        "b'cba'\n"
        "\n"
        "After."
    )
    assert markdown.split("\n") == [
        "Serve `crossgate.testing.Request` with `call_wsgi`:",
        "",
        "    indented code stays",
        "",
        "```pycon",
        ">>> body = b'abc'[::-1]",
        "... ",
        ">>> body",
        "b'cba'",
        "```",
        "",
        "After.",
    ]


def test_a_doctest_block_at_the_end_is_closed() -> None:
    assert _hooks()._markdown_docstring(">>> 1\n1").split("\n") == ["```pycon", ">>> 1", "1", "```"]


def test_links_leaving_docs_go_to_the_repository(tmp_path: Path) -> None:
    hooks = _hooks()
    docs = REPO / "docs"
    url = "https://github.com/crossgate/crossgate"

    def link(target: str, page_dir: Path = docs / "guides") -> str | None:
        result: str | None = hooks._repository_link(target, page_dir, docs, url)
        return result

    assert link("../../examples/migrate/") == f"{url}/tree/main/examples/migrate"
    assert link("../../examples/mixed.py#L1") == f"{url}/blob/main/examples/mixed.py#L1"
    # Inside docs/, absolute, external or missing: left for MkDocs to check or report.
    assert link("../migration.md") is None
    assert link("#a-heading") is None
    assert link("https://peps.python.org/pep-3333/") is None
    assert link("../../examples/not-there.py") is None
    assert link("../../../outside-the-repository.md") is None
