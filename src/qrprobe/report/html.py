"""Render report sections into one self-contained HTML file.

Images are embedded as base64 ``data:`` URIs and the CSS is inline, so the file can be mailed or archived
alone; a Content-Security-Policy forbids scripts and any external load. The Jinja2 environment autoescapes
everything, because concept names, model names and paths come from user files.
"""

from __future__ import annotations

import base64
import datetime as _dt
import os
import re
from collections.abc import Sequence
from pathlib import Path

from .._atomic import atomic_write_text
from ..errors import require
from .section import PNG_DPI, Section
from .tables import Table, slugify

_TEMPLATE = "report.html.j2"
_MARKER = ".qrprobe-figures"
_COLOUR = re.compile(r"^#[0-9a-fA-F]{3,8}$")


def _environment():
    jinja2 = require("jinja2", "report", "the HTML report")
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def _b64(data: bytes | None) -> str:
    return base64.b64encode(data).decode("ascii") if data else ""


#: Figures are shown as if the screen had this many pixels per inch of figure: a 5.5-inch figure is 720 CSS
#: px, about 60% of a section's card (at 96, their physical size, they filled a third of it); never wider than
#: the card (CSS ``max-width``).
SCREEN_DPI = 110


def _display_width(png: bytes, dpi: int = PNG_DPI) -> int:
    """CSS width of a PNG rendered at ``dpi`` and shown at :data:`SCREEN_DPI` (0: unknown)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        return 0
    return round(int.from_bytes(png[16:20], "big") * SCREEN_DPI / dpi)


def _table_view(table: Table) -> dict:
    disp = table.display_frame()
    text = table.text_columns()
    return {"name": slugify(table.name), "title": table.title, "caption": table.caption, "columns": list(disp.columns),
            "rows": [list(r) for r in disp.itertuples(index=False)], "text": text}


def _section_view(section: Section) -> dict:
    blocks = []
    for b in section.blocks:
        blocks.append({
            "title": b.title, "text": b.text,
            "tables": [_table_view(t) for t in b.tables],
            "figures": [{"caption": f.caption, "png_b64": _b64(f.png), "width": _display_width(f.png)}
                        for f in b.figures if f.embed],
            "thumbnail_rows": [{
                "caption": r.caption, "colour": r.colour if _COLOUR.match(r.colour or "") else "",
                "thumbnails": [{"label": t.label, "b64": _b64(t.jpeg)} for t in r.thumbnails]}
                for r in b.thumbnail_rows],
        })
    return {"kind": section.kind, "title": section.title, "intro": section.intro, "notes": section.notes,
            "blocks": blocks}


def render_html(sections: Sequence[Section], *, title: str = "qrprobe report", subtitle: str = "",
                notes: Sequence[str] = ()) -> str:
    """The complete HTML page for ``sections`` (a string; nothing is written)."""
    from .. import __version__

    template = _environment().get_template(_TEMPLATE)
    return template.render(
        title=title, subtitle=subtitle, notes=list(notes), version=__version__,
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        sections=[_section_view(s) for s in sections])


def write_html(sections: Sequence[Section], path: str | os.PathLike, *, title: str = "qrprobe report",
               subtitle: str = "", notes: Sequence[str] = ()) -> Path:
    """Render and write the page atomically (a temporary file renamed into place); return its path."""
    html = render_html(sections, title=title, subtitle=subtitle, notes=notes)
    path = Path(path)
    atomic_write_text(path, html)
    return path


def export_sections(sections: Sequence[Section], directory: str | os.PathLike) -> Path:
    """Write every section's tables (CSV/JSON/Markdown/LaTeX), figures (PNG/PDF) and thumbnails under
    ``directory/NN-<kind>/``.

    The directory is written atomically. An existing directory is replaced only if an earlier export made it
    (it holds the marker file ``.qrprobe-figures``); any other non-empty directory is an error.
    """
    from .._atomic import atomic_directory
    from ..errors import QRProbeInputError

    directory = Path(directory)
    ours = (directory / _MARKER).is_file()
    if directory.exists() and not ours and (not directory.is_dir() or any(directory.iterdir())):
        raise QRProbeInputError(f"--figures-dir {str(directory)!r} exists and is not empty (and was not made by "
                                "qrprobe report); choose another directory")
    with atomic_directory(directory, overwrite=True, kind="qrprobe.figures") as tmp:
        (tmp / _MARKER).write_text("written by qrprobe report\n")
        for i, section in enumerate(sections, 1):
            sub = tmp / f"{i:02d}-{slugify(section.kind)}"
            sub.mkdir()
            section.write_files(sub)
    return Path(directory)
