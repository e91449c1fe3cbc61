"""Images in uncompressed tar shards laid out as webdataset samples.

Members sharing a key (the member name up to the first dot of its file name) form a sample; ``image_id`` is
the key. The first member with an image extension is the image, a ``.cls``/``.label`` member (text) its label.
Images are read in place (shard, byte offset, length), never extracted.

A damaged shard loses nothing silently. A tar reader stops at the first header it cannot read, at an early
end-of-archive marker or at the end of a cut file; :func:`scan_shard` then looks at what lies beyond and
reports, in ``rejected``, every sample with a member that was cut short or lies past the damage (named from
the headers that can still be read), plus one entry per damaged shard saying where and how it is damaged.
"""

from __future__ import annotations

import glob
import os
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import QRProbeInputError
from .decode import IMAGE_EXTENSIONS, ImageDecodeError
from .files import byte_cap, is_utf8, printable, too_large, why_not_a_file
from .source import ImageSource

_WDS_IMAGE_EXTS = tuple(e.lstrip(".") for e in IMAGE_EXTENSIONS)
_WDS_LABEL_EXTS = ("cls", "cls.txt", "label", "label.txt", "class", "class.txt")
_MAX_LABEL_BYTES = 64 * 1024
_BLOCK = tarfile.BLOCKSIZE
_BRACE = re.compile(r"\{(\d+)\.\.(\d+)\}")


class TarReader:
    """Picklable ``row -> bytes`` for tar sources: seek to the member's data and read it."""

    def __init__(self, tar_files: Sequence[str], tar_index: np.ndarray) -> None:
        self.files = list(tar_files)
        self.index = np.asarray(tar_index, dtype=np.int64).reshape(-1, 3)  # shard, data offset, length

    def __call__(self, row: int) -> bytes:
        shard, offset, length = (int(v) for v in self.index[row])
        try:
            with open(self.files[shard], "rb") as f:
                f.seek(offset)
                data = f.read(length)
        except OSError as exc:
            raise ImageDecodeError(f"cannot read tar shard ({exc.strerror or exc})") from None
        if len(data) != length:
            raise ImageDecodeError("tar member is truncated")
        return data

    def select(self, rows: np.ndarray) -> TarReader:
        return TarReader(self.files, self.index[rows])


def expand_shard_pattern(pattern: str) -> list[str]:
    """Expand ``shards-{000..009}.tar`` (zero-padded ranges) and shell globs into a sorted list of files."""
    m = _BRACE.search(pattern)
    if m:
        lo, hi = m.group(1), m.group(2)
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        out: list[str] = []
        for v in range(int(lo), int(hi) + 1):
            out.extend(expand_shard_pattern(pattern[:m.start()] + str(v).zfill(width) + pattern[m.end():]))
        return out
    if any(ch in pattern for ch in "*?["):
        return sorted(glob.glob(pattern))
    return [pattern]


def is_shard_pattern(text: str) -> bool:
    """Whether IMAGES names tar shards: a ``.tar`` file, a ``{000..009}`` range or a glob."""
    return text.endswith(".tar") or bool(_BRACE.search(text)) or any(ch in text for ch in "*?[")


def _split_key(member_name: str) -> tuple[str, str]:
    """webdataset convention: ``dir/key.ext1.ext2`` -> (``dir/key``, ``ext1.ext2``)."""
    directory, _, base = member_name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{directory}/{stem}" if directory else stem
    return key, ext.lower() if dot else ""


def tar_source(shards: str | os.PathLike | Sequence[str | os.PathLike]) -> ImageSource:
    """Images in uncompressed tar shards laid out as webdataset samples.

    ``shards`` is a pattern (``data/shard-{0000..0099}.tar``, a glob), a directory holding ``*.tar``, one
    ``.tar`` file or a list of them. Samples without an image, and samples damaged in their shard, are listed
    in ``rejected``.
    """
    if isinstance(shards, (str, os.PathLike)):
        spec = str(shards)
        files = (sorted(glob.glob(os.path.join(spec, "*.tar"))) if os.path.isdir(spec)
                 else expand_shard_pattern(spec))
    else:
        spec = ",".join(str(s) for s in shards)
        files = [str(s) for s in shards]
    if not files:
        raise QRProbeInputError(f"IMAGES: no tar shards match {spec!r}")
    for f in files:
        if not os.path.isfile(f):
            raise QRProbeInputError(f"IMAGES: tar shard {f!r} {why_not_a_file(f)}")
    ids: list[str] = []
    paths: list[str] = []
    labels: list[str] = []
    index: list[tuple[int, int, int]] = []
    rejected: list[dict] = []
    for shard_no, tar_path in enumerate(files):
        scan = scan_shard(tar_path)
        rejected.extend(scan.rejected)
        with open(tar_path, "rb") as fh:
            for key, members in scan.samples.items():
                where = f"{tar_path}::{printable(key)}"
                image_ext = next((e for e in members if e in _WDS_IMAGE_EXTS), None)
                label_ext = next((e for e in _WDS_LABEL_EXTS if e in members), None)
                reason = _sample_problem(key, members, image_ext, label_ext)
                if reason or image_ext is None:  # (no image member is a reason)
                    rejected.append({"image_id": printable(key), "path": where, "reason": reason})
                    continue
                name, offset, size = members[image_ext]
                label = ""
                if label_ext is not None:
                    _, loff, lsize = members[label_ext]
                    fh.seek(loff)
                    label = fh.read(lsize).decode("utf-8", errors="replace").strip()
                ids.append(key)
                paths.append(f"{os.path.abspath(tar_path)}::{name}")
                labels.append(label)
                index.append((shard_no, offset, size))
    if not ids:
        raise QRProbeInputError(f"IMAGES: the tar shards {spec!r} hold no image samples")
    has_labels = any(labels)
    tar_index = np.array(index, dtype=np.int64).reshape(-1, 3)
    reader = TarReader([os.path.abspath(f) for f in files], tar_index)
    return ImageSource("tar", spec, ids, paths, labels if has_labels else None, tar_index[:, 2].copy(),
                       reader=reader, rejected=rejected)


def _sample_problem(key: str, members: dict, image_ext: str | None, label_ext: str | None) -> str | None:
    if image_ext is None:
        return f"sample has no image member (members: {sorted(members)})"
    if not is_utf8(key):
        return "member name is not valid UTF-8"
    if members[image_ext][2] > byte_cap():
        return too_large(members[image_ext][2])
    if label_ext is not None and members[label_ext][2] > _MAX_LABEL_BYTES:
        return f"label member {members[label_ext][0]!r} is over {_MAX_LABEL_BYTES} bytes: not a label"
    return None


@dataclass
class ShardScan:
    """A shard's samples ``{key: {ext: (member name, data offset, size)}}`` (archive order) and the
    rejected entries of its damage."""

    samples: dict[str, dict[str, tuple[str, int, int]]] = field(default_factory=dict)
    rejected: list[dict] = field(default_factory=list)


def scan_shard(tar_path: str) -> ShardScan:
    """List a shard's samples; samples touched by damage go to ``rejected`` instead (see the module doc)."""
    file_size = os.path.getsize(tar_path)
    scan = ShardScan()
    lost: dict[str, str] = {}  # member name -> why it is lost
    with open(tar_path, "rb") as fh:
        try:
            tf = tarfile.open(fileobj=fh, mode="r:")  # noqa: SIM115 - it reads fh, closed by the with
        except tarfile.TarError as exc:
            raise QRProbeInputError(f"IMAGES: {tar_path!r} is not an uncompressed tar file ({exc}); "
                                    "compressed shards are not supported, use plain .tar") from None
        end = 0  # where the next header should start
        last = None  # the last member read: its sample may be incomplete if damage follows
        try:
            for member in tf:
                data_end = member.offset_data + member.size
                if data_end > file_size:
                    lost[member.name] = f"cut short: the shard ends at byte {file_size}, the member at {data_end}"
                    end = file_size
                    break
                end, last = member.offset_data + _padded(member.size), member.name
                key, ext = _split_key(member.name)
                if member.isfile() and ext and not key.rpartition("/")[2].startswith("."):
                    scan.samples.setdefault(key, {})[ext] = (member.name, member.offset_data, member.size)
        except tarfile.TarError:
            pass  # a header tarfile cannot read: reported below from what lies at `end`
        damage, named = _damage_at(fh, end, file_size, lost)
    if damage is None:
        return scan
    if last is not None and not named:  # the member at the damage may have belonged to the last sample
        lost.setdefault(last, "possibly incomplete: an unnamed member is lost right after it (a sample's "
                              "members are stored together)")
    scan.rejected.append({"image_id": os.path.basename(tar_path), "path": tar_path, "reason": damage})
    by_key: dict[str, list[str]] = {}
    for name in lost:
        by_key.setdefault(_split_key(name)[0], []).append(name)
    for key, names in by_key.items():
        scan.samples.pop(key, None)
        why = "; ".join(f"{printable(n)}: {lost[n]}" for n in names)
        scan.rejected.append({"image_id": printable(key), "path": f"{tar_path}::{printable(names[0])}",
                              "reason": f"lost from a damaged tar shard ({why})"})
    return scan


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _damage_at(fh, end: int, file_size: int, lost: dict[str, str]) -> tuple[str | None, bool]:
    """How the shard is damaged when a tar reader stops at byte ``end`` (None when it ends cleanly), and
    whether the member at the damage is known by name; adds the members that lie beyond to ``lost``."""
    if end >= file_size:
        if lost:
            return f"the shard is cut short (it ends at byte {file_size}, inside a member)", True
        return (f"the shard ends at byte {file_size} without an end-of-archive marker: it was probably cut "
                "short, and any members after that point are lost"), False
    fh.seek(end)
    block = fh.read(_BLOCK)
    if not block.strip(b"\0"):
        beyond = _headers_after(fh, end + _BLOCK, file_size)
        for name in beyond:
            lost[name] = f"lies after an end-of-archive marker at byte {end}, where tar readers stop"
        return (f"the shard has {len(beyond)} member(s) after its end-of-archive marker" if beyond else None), True
    field = block[:100]
    readable = field.split(b"\0")[0].decode("utf-8", "surrogateescape")
    # a block cut short keeps the bytes it has: its name is sure when the name field ends inside it; a whole
    # block that tar readers refuse has a bad checksum, so its name may be as damaged as the rest
    named = bool(readable) and b"\0" in field and len(block) < _BLOCK
    if readable:
        lost[readable] = f"its header at byte {end} is damaged or cut short (name as far as readable)"
    for name in _headers_after(fh, end + _BLOCK, file_size):
        lost[name] = f"lies after a damaged tar header at byte {end}, where tar readers stop"
    return (f"damaged tar header at byte {end} of {file_size} (member name as far as readable: "
            f"{printable(readable)!r}); the rest of the shard cannot be read"), named


def _headers_after(fh, start: int, file_size: int) -> list[str]:
    """Names of the members whose headers can still be read from byte ``start`` on, block by block."""
    names: list[str] = []
    pos, long_name = start, None
    while pos + _BLOCK <= file_size:
        fh.seek(pos)
        try:
            info = tarfile.TarInfo.frombuf(fh.read(_BLOCK), tarfile.ENCODING, "surrogateescape")
        except tarfile.HeaderError:
            pos += _BLOCK
            continue
        data = pos + _BLOCK
        pos = data + _padded(info.size)
        if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE):
            fh.seek(data)
            long_name = _name_from_extension(fh.read(min(info.size, 65536)), info.type)
            continue
        if info.isfile():
            names.append(long_name or info.name)
        long_name = None
    return names


def _name_from_extension(data: bytes, kind: bytes) -> str | None:
    """The member name carried by a GNU long-name block or a pax ``path`` record."""
    if kind == tarfile.GNUTYPE_LONGNAME:
        return data.split(b"\0")[0].decode("utf-8", "surrogateescape")
    for record in data.split(b"\n"):
        _, _, keyword_value = record.partition(b" ")
        if keyword_value.startswith(b"path="):
            return keyword_value[5:].decode("utf-8", "surrogateescape")
    return None
