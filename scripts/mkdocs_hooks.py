"""Build-time helpers for the documentation site (mkdocs.yml loads this file twice).

* As an MkDocs hook (``hooks:``): a relative link from a page to a file of the repository
  outside ``docs/`` (``../examples/migrate/``, ``../tests/...py``) becomes a link to that
  file in the repository on GitHub, so the same Markdown reads right on GitHub and on the
  site. A link to a file that does not exist is left as it is, for MkDocs to report (a
  warning, which ``--strict`` makes an error), as it reports the links inside ``docs/``.
* Also as a hook: every name in ``crossgate.__all__`` and ``crossgate.testing.__all__``
  must have a heading in the API reference, so a new export cannot be left out.
* As a griffe extension (mkdocstrings ``extensions:``): the docstrings are written for
  ``help()`` and doctest, in reST's habits; their doctest blocks become ``pycon`` code
  blocks (or Markdown reads ``x[::-1]`` as a link), and Sphinx roles
  (``:func:`call_wsgi```) become plain code.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import griffe

log = logging.getLogger("mkdocs.hooks.crossgate")

#: ``[text](target)``; the target has no spaces or parentheses in these pages.
_INLINE_LINK = re.compile(r"(\]\()([^)\s]+)(\))")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _repository_link(target: str, page_dir: Path, docs_dir: Path, repo_url: str) -> str | None:
    """The GitHub URL for a relative link leaving docs/, or None to leave it to MkDocs."""
    if _SCHEME.match(target) or target.startswith(("#", "/")):
        return None
    path, _, anchor = target.partition("#")
    resolved = (page_dir / path).resolve()
    if resolved.is_relative_to(docs_dir):
        return None
    root = docs_dir.parent
    if not resolved.is_relative_to(root) or not resolved.exists():
        return None  # MkDocs reports it: "the target is not found among documentation files"
    kind = "tree" if resolved.is_dir() else "blob"
    url = f"{repo_url.rstrip('/')}/{kind}/main/{resolved.relative_to(root).as_posix()}"
    return f"{url}#{anchor}" if anchor else url


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: links to repository files outside docs/ go to GitHub."""
    docs_dir = Path(config["docs_dir"]).resolve()
    page_dir = Path(page.file.abs_src_path).resolve().parent
    repo_url = config["repo_url"]
    lines = markdown.split("\n")
    in_fence = False
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence:
            continue

        def rewrite(match: re.Match[str]) -> str:
            url = _repository_link(match.group(2), page_dir, docs_dir, repo_url)
            return match.group(0) if url is None else f"{match.group(1)}{url}{match.group(3)}"

        lines[index] = _INLINE_LINK.sub(rewrite, line)
    return "\n".join(lines)


#: The public modules whose every export must have a heading of its own on the site.
_PUBLIC = ("crossgate", "crossgate.testing")
_HEADING_ID = re.compile(r'<h[1-6] id="([^"]+)"')
_headings: set[str] = set()


def on_pre_build(config: Any) -> None:
    """MkDocs hook: forget the headings of the last build (``mkdocs serve`` rebuilds)."""
    _headings.clear()


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: collect the page's heading ids (mkdocstrings names them by path)."""
    _headings.update(_HEADING_ID.findall(html))
    return html


def on_post_build(config: Any) -> None:
    """MkDocs hook: an export with no heading in the API reference is a warning."""
    for module_name in _PUBLIC:
        # Read statically, as mkdocstrings reads the docstrings: nothing is imported.
        module = griffe.load(module_name, search_paths=[Path(config["docs_dir"]).parent / "src"])
        for name in module.exports or ():
            if f"{module_name}.{name}" not in _headings:
                log.warning("%s.%s is not in the API reference", module_name, name)


_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj|const):`~?([^`]+)`")


def _markdown_docstring(text: str) -> str:
    """Doctest blocks fenced as ``pycon``, Sphinx roles made code, ``::`` made ``:``."""
    out: list[str] = []
    in_doctest = False
    in_fence = False
    for raw in text.split("\n"):
        line = raw
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and not in_doctest and line.startswith(">>>"):
            out.append("```pycon")
            in_doctest = True
        elif in_doctest and not line.strip():
            out.append("```")
            in_doctest = False
        if not in_doctest and not in_fence:
            line = _ROLE.sub(lambda m: f"`{m.group(1)}`", line)
            if line.endswith("::") and line.strip() != "::":
                line = line[:-1]
        out.append(line)
    if in_doctest:
        out.append("```")
    return "\n".join(out)


class DocstringMarkup(griffe.Extension):
    """griffe extension: docstrings written for help() and doctest, read as Markdown."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _markdown_docstring(obj.docstring.value)
