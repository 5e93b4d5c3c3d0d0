"""The studies' reports: Markdown templates in ``templates/`` filled with numbers, and tables."""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["render_template", "markdown_table"]

TEMPLATES = Path(__file__).parent / "templates"


def render_template(name: str, values: dict[str, Any]) -> str:
    """``templates/<name>`` with its ``${placeholders}`` filled from ``values``.

    Raises:
        KeyError: a placeholder without a value (a template and its caller out of step).
    """
    template = string.Template((TEMPLATES / name).read_text(encoding="utf-8"))
    return template.substitute({k: str(v) for k, v in values.items()})


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
