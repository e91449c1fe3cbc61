"""A report section: the tables, figures, thumbnails and notes of one analysis, and its directory on disk.

Every analysis command writes one section directory; ``qrprobe report`` reads such directories (and builds
sections from Result directories itself) and renders them into one HTML page. On disk::

    section.json           format, kind, title, intro, notes, config, blocks (names of their parts)
    tables/<name>.csv|json|md|tex
    figures/<name>.png|pdf
    thumbnails/<name>.jpg  image thumbnails (explanations)

A section is a list of :class:`Block`: a heading with text, tables, figures and thumbnail rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .._atomic import atomic_directory
from .._files import member, reading
from .._versions import library_versions
from ..errors import QRProbeInputError
from .tables import Table, slugify

FORMAT = "qrprobe.report-section/1"
#: Resolution of the figures' PNG files (the HTML page shows them at :data:`~qrprobe.report.html.SCREEN_DPI`).
PNG_DPI = 150


@dataclass
class FigureData:
    """A rendered figure: ``png`` and ``pdf`` bytes (pdf may be empty when loaded from a directory).

    ``embed=False`` marks a figure that is only exported (PNG/PDF files), not shown in the HTML page (e.g. a
    composite panel whose parts the page already shows).
    """

    name: str
    caption: str
    png: bytes
    pdf: bytes = b""
    embed: bool = True

    @classmethod
    def from_figure(cls, fig, name: str, caption: str = "", embed: bool = True) -> FigureData:
        """Render a matplotlib figure to PNG and PDF bytes."""
        import io

        png, pdf = io.BytesIO(), io.BytesIO()
        fig.savefig(png, format="png", dpi=PNG_DPI)
        fig.savefig(pdf, format="pdf")
        return cls(slugify(name), caption, png.getvalue(), pdf.getvalue(), embed)


@dataclass
class Thumbnail:
    """A small JPEG of one image (``jpeg`` is None when the file could not be read)."""

    label: str
    jpeg: bytes | None
    name: str = ""


@dataclass
class ThumbnailRow:
    """A captioned row of thumbnails (e.g. example images of one cluster)."""

    caption: str
    thumbnails: list[Thumbnail]
    colour: str = ""


@dataclass
class Block:
    """A part of a section: heading, text, then tables, figures and thumbnail rows."""

    title: str = ""
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[FigureData] = field(default_factory=list)
    thumbnail_rows: list[ThumbnailRow] = field(default_factory=list)


@dataclass
class Section:
    """One analysis in a report.

    Attributes
    ----------
    kind : what produced it (``comparison``, ``breakdown``, ``explain``, ``ksweep``, ``transfer``, ...)
    title, intro : heading and explanatory paragraph
    blocks : the content
    notes : remarks shown in the report (e.g. what could not be made and why)
    config : the analysis configuration (shown in the report's configuration part)
    """

    kind: str
    title: str
    intro: str = ""
    blocks: list[Block] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def tables(self) -> list[Table]:
        return [t for b in self.blocks for t in b.tables]

    def figures(self) -> list[FigureData]:
        return [f for b in self.blocks for f in b.figures]

    # ------------------------------------------------------------------ persistence
    def write_files(self, directory: Path) -> None:
        """Write tables, figures and thumbnails under ``directory`` (which must exist)."""
        for table in self.tables():
            table.save(directory / "tables")
        for fig in self.figures():
            (directory / "figures").mkdir(exist_ok=True)
            (directory / "figures" / f"{fig.name}.png").write_bytes(fig.png)
            if fig.pdf:
                (directory / "figures" / f"{fig.name}.pdf").write_bytes(fig.pdf)
        for b, block in enumerate(self.blocks):
            for r, row in enumerate(block.thumbnail_rows):
                for t, thumb in enumerate(row.thumbnails):
                    if thumb.jpeg is not None:
                        thumb.name = thumb.name or f"b{b}-r{r}-{t}"
                        (directory / "thumbnails").mkdir(exist_ok=True)
                        (directory / "thumbnails" / f"{thumb.name}.jpg").write_bytes(thumb.jpeg)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "kind": self.kind, "title": self.title, "intro": self.intro,
            "notes": self.notes, "config": self.config, "versions": library_versions(),
            "blocks": [{
                "title": b.title, "text": b.text,
                "tables": [slugify(t.name) for t in b.tables],
                "figures": [{"name": f.name, "caption": f.caption, "embed": f.embed} for f in b.figures],
                "thumbnail_rows": [{"caption": r.caption, "colour": r.colour, "thumbnails": [
                    {"label": t.label, "name": t.name if t.jpeg is not None else ""} for t in r.thumbnails]}
                    for r in b.thumbnail_rows],
            } for b in self.blocks],
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False,
             extra: Callable[[Path], None] | None = None) -> Path:
        """Write the section directory atomically (a temporary name renamed when complete).

        ``extra(tmp)`` may add files (e.g. arrays, Result sub-directories) before the rename.
        """
        with atomic_directory(path, overwrite=overwrite, kind=FORMAT.split("/")[0]) as tmp:
            self.write_files(tmp)
            if extra is not None:
                extra(tmp)
            (tmp / "section.json").write_text(json.dumps(self.to_dict(), indent=2, default=str),
                                              encoding="utf-8")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Section:
        """Read a section directory written by :meth:`save`."""
        path = Path(path)
        spath = path / "section.json"
        if not spath.is_file():
            raise QRProbeInputError(f"{str(path)!r} is not a qrprobe analysis directory (no section.json)")
        try:
            data = json.loads(spath.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise QRProbeInputError(f"{spath}: not valid JSON ({exc})") from exc
        fmt = data.get("format") if isinstance(data, dict) else None
        if fmt != FORMAT:
            raise QRProbeInputError(f"{spath}: format {fmt!r}, expected {FORMAT!r}")
        with reading(spath, "an analysis directory (section.json)"):
            return cls._from_dict(path, data)

    @classmethod
    def _from_dict(cls, path: Path, data: dict) -> Section:
        def file(folder: str, name: object, suffix: str) -> Path:  # never outside the directory
            return member(path / folder, f"{name}{suffix}", "analysis directory")

        blocks = []
        for b in data.get("blocks", []):
            tables = [Table.load(file("tables", name, ".json")) for name in b.get("tables", [])]
            figures = []
            for f in b.get("figures", []):
                png = file("figures", f["name"], ".png")
                if not png.is_file():
                    raise QRProbeInputError(f"analysis directory {str(path)!r} is incomplete: {png.name} missing")
                pdf = png.with_suffix(".pdf")
                figures.append(FigureData(f["name"], f.get("caption", ""), png.read_bytes(),
                                          pdf.read_bytes() if pdf.is_file() else b"", bool(f.get("embed", True))))
            rows = []
            for r in b.get("thumbnail_rows", []):
                thumbs = []
                for t in r.get("thumbnails", []):
                    jpg = file("thumbnails", t["name"], ".jpg") if t.get("name") else None
                    thumbs.append(Thumbnail(t.get("label", ""), jpg.read_bytes() if jpg and jpg.is_file()
                                            else None, t.get("name", "")))
                rows.append(ThumbnailRow(r.get("caption", ""), thumbs, r.get("colour", "")))
            blocks.append(Block(b.get("title", ""), b.get("text", ""), tables, figures, rows))
        return cls(data["kind"], data.get("title", ""), data.get("intro", ""), blocks, data.get("notes", []),
                   data.get("config", {}))
