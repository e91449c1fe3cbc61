"""Reports: tables (CSV/JSON/Markdown/LaTeX), figures (PNG/PDF) and one self-contained HTML page.

Heavy dependencies (matplotlib, jinja2, wordcloud, pillow: the ``report`` extra) are imported only when a
figure or page is made.
"""

from __future__ import annotations

from .section import Block, FigureData, Section, Thumbnail, ThumbnailRow
from .tables import Table


def report(*args, **kwargs):
    """A self-contained HTML report on Results, Sections and/or directories (see :func:`.build.report`)."""
    from .build import report as _report

    return _report(*args, **kwargs)


def build_report(*args, **kwargs):
    """``qrprobe report`` as a function (see :func:`.build.build_report`)."""
    from .build import build_report as _build

    return _build(*args, **kwargs)


__all__ = ["Block", "FigureData", "Section", "Table", "Thumbnail", "ThumbnailRow", "build_report", "report"]
