"""Progress output of every long loop: one module, so that all of qrprobe behaves the same way.

Three modes, chosen per call by ``enabled`` (the library's ``progress=`` argument, ``not --quiet`` in the CLI)
and by whether stderr is a terminal:

- on a terminal: a tqdm bar with rate and ETA (bars of inner loops are removed when they finish);
- not a terminal (a log file, CI): no bars and no carriage returns, only the plain lines that callers emit
  with :func:`note` (one per completed clustering, step or stage), so logs stay short;
- disabled: nothing but warnings (:func:`warn`) and errors — in the CLI. A library call is silent unless asked:
  with ``progress=False`` its warnings and notes go to the ``logging`` logger ``"qrprobe"`` (silent by default;
  ``logging.basicConfig()`` shows them), and the results record them (``inputs.warnings``, ``inputs.flags``).
  The CLI turns :func:`console_output` on, so its output is what it always was.

:func:`scope` names what the enclosed work belongs to (a model, a K, a clustering); every bar description and
note inside is prefixed with the open scopes, e.g. ``EfficientNet-Lite0 · K=24 · K-means, clustering 2/3
(seed 1)``. :func:`once` collapses repeated warnings (a K sweep evaluates the same inputs at every K).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_SCOPES: ContextVar[tuple[str, ...]] = ContextVar("qrprobe_progress_scopes", default=())
_SEEN: ContextVar[set[str] | None] = ContextVar("qrprobe_progress_seen_warnings", default=None)
SEPARATOR = " · "
#: Where a library call's warnings and notes go when it prints nothing (``progress=False``).
LOGGER = logging.getLogger("qrprobe")
LOGGER.addHandler(logging.NullHandler())  # silent unless the application configures logging
_CONSOLE = [False]  # a list, not a ContextVar: threads the CLI starts print alike


@contextmanager
def console_output(enabled: bool = True) -> Iterator[None]:
    """Inside, warnings (and the notes that :func:`loud` asks for) print on stderr whatever a call's
    ``progress`` says: the CLI's behaviour. Outside (the library), they go to :data:`LOGGER` unless
    ``progress=True``."""
    before = _CONSOLE[0]
    _CONSOLE[0] = enabled
    try:
        yield
    finally:
        _CONSOLE[0] = before


def loud(progress: bool = False) -> bool:
    """Whether warnings and notes print on stderr: ``progress`` asked for them, or inside :func:`console_output`."""
    return bool(progress) or _CONSOLE[0]


def interactive() -> bool:
    """Whether stderr is a terminal (bars are drawn only there)."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def _terminal_width() -> int:
    """Columns of the terminal on stderr (0 when it reports none, as a bare pseudo-terminal does)."""
    import os

    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def describe(text: str) -> str:
    """``text`` prefixed with the open scopes (``"ResNet-50 · K=1000 · " + text``)."""
    return SEPARATOR.join([*_SCOPES.get(), text]) if text else SEPARATOR.join(_SCOPES.get())


@contextmanager
def scope(label: str | None) -> Iterator[None]:
    """Prefix every bar and note inside with ``label`` (None, ``""`` or a label already open: nothing added)."""
    if not label or str(label) in _SCOPES.get():
        yield
        return
    token = _SCOPES.set((*_SCOPES.get(), str(label)))
    try:
        yield
    finally:
        _SCOPES.reset(token)


def _emit(line: str) -> None:
    if interactive():
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)  # above any open bar, without breaking it
    else:
        print(line, file=sys.stderr, flush=True)


def note(text: str, enabled: bool = True) -> None:
    """One plain progress line on stderr (scopes prefixed), when ``enabled``: on a terminal and in logs."""
    if enabled:
        _emit(describe(text))


def remark(text: str, enabled: bool | None = None) -> None:
    """:func:`note` ``"note: text"``, once per text inside :func:`once` (e.g. once per K sweep, not per K);
    printed when ``enabled`` (default: :func:`loud`), else logged at level INFO to :data:`LOGGER`."""
    seen = _SEEN.get()
    if seen is not None:
        if f"note: {text}" in seen:
            return
        seen.add(f"note: {text}")
    if loud() if enabled is None else enabled:
        note(f"note: {text}")
    else:
        LOGGER.info(describe(text))


def warn(message: str, progress: bool = False) -> None:
    """``warning: message`` on stderr in the CLI (:func:`console_output`) or with ``progress``, else logged at
    level WARNING to :data:`LOGGER` (a library call stays silent); once per message inside :func:`once`."""
    seen = _SEEN.get()
    if seen is not None:
        if message in seen:
            return
        seen.add(message)
    if loud(progress):
        _emit(f"warning: {message}")
    else:
        LOGGER.warning(describe(message))


@contextmanager
def once() -> Iterator[None]:
    """Print each distinct warning only once inside (nested uses share the outermost set)."""
    if _SEEN.get() is not None:
        yield
        return
    token = _SEEN.set(set())
    try:
        yield
    finally:
        _SEEN.reset(token)


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"2 h 07 min"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Bar:
    """A progress bar: tqdm on a terminal when enabled, otherwise an object with the same methods that draws
    nothing. ``seconds`` (since creation) and ``n`` are kept in every mode, for a caller's summary line.

    Parameters
    ----------
    total : number of units (None: unknown).
    desc : what is counted; prefixed with the open scopes.
    enabled : draw anything at all.
    unit : the unit's name (``"img"``, ``"epoch"``, ``"it"``).
    leave : keep the finished bar on screen (outer loops) or remove it (inner loops, the default).
    """

    def __init__(self, total: int | None, desc: str, *, enabled: bool, unit: str = "it", leave: bool = False,
                 unit_scale: bool = False) -> None:
        self.total, self.n, self.unit = total, 0, unit
        self.desc = describe(desc)
        self.start = time.perf_counter()
        self._tqdm = None
        if enabled and interactive() and total != 0:
            from tqdm.auto import tqdm

            sized = _terminal_width() > 0  # a terminal that reports no size would hide tqdm's bars
            self._tqdm = tqdm(total=total, desc=self.desc, unit=unit, unit_scale=unit_scale, leave=leave,
                              file=sys.stderr, dynamic_ncols=sized, ncols=None if sized else 100,
                              nrows=None if sized else 20, smoothing=0.1)

    @property
    def drawn(self) -> bool:
        """Whether a bar is on screen."""
        return self._tqdm is not None

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._tqdm is not None:
            self._tqdm.update(n)

    def set_description(self, desc: str) -> None:
        self.desc = describe(desc)
        if self._tqdm is not None:
            self._tqdm.set_description(self.desc, refresh=False)

    def set_postfix_str(self, text: str) -> None:
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(text, refresh=False)

    def set_postfix(self, refresh: bool = False, **values) -> None:
        """``key=value`` after the bar (tqdm's ``set_postfix``)."""
        if self._tqdm is not None:
            self._tqdm.set_postfix(refresh=refresh, **values)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bar(total: int | None, desc: str, *, enabled: bool, unit: str = "it", leave: bool = False,
        unit_scale: bool = False) -> Bar:
    """A :class:`Bar` (see there)."""
    return Bar(total, desc, enabled=enabled, unit=unit, leave=leave, unit_scale=unit_scale)


def track(items, desc: str, *, enabled: bool, unit: str = "it", total: int | None = None) -> Iterator:
    """Iterate ``items`` with a :class:`Bar` (closed when the loop ends, also by ``break`` or an error)."""
    count = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    with bar(count, desc, enabled=enabled, unit=unit) as b:
        for item in items:
            yield item
            b.update()


class StageCounter:
    """``[stage i/n] name`` lines with the time elapsed and a rough estimate of the time left, for a run of ``n``
    items known in advance.

    The estimate is rough by design: the mean time of the items of a stage computed so far times the items of
    that stage still to do. Items of stages not reached yet have no estimate and are counted instead (``"3
    items not timed yet"``); reused items count as done in no time.
    """

    def __init__(self, kinds: list[str], enabled: bool = True, emit: Callable[[str], None] | None = None) -> None:
        self.kinds = list(kinds)
        self.enabled = enabled
        self.emit = emit or note
        self.done = 0
        self.start = time.perf_counter()
        self._times: dict[str, list[float]] = {}
        self._item_start = self.start

    @property
    def total(self) -> int:
        return len(self.kinds)

    def begin(self, kind: str, name: str) -> None:
        """Announce the next item (``kind``: its stage, for the estimate; ``name``: what is shown)."""
        self._item_start = time.perf_counter()
        i = min(self.done + 1, self.total)
        if self.enabled:
            self.emit(f"[stage {i}/{self.total}] {name}{self._eta_text()}")

    def end(self, kind: str, computed: bool) -> None:
        """The current item is finished (``computed``: it was not reused)."""
        if computed:
            self._times.setdefault(kind, []).append(time.perf_counter() - self._item_start)
        self.done += 1

    def eta(self) -> tuple[float, int]:
        """``(seconds, untimed)``: the estimated time of the items left whose stage has a measured item, and how
        many items are left whose stage has none."""
        left = self.kinds[self.done:]
        timed = [k for k in left if k in self._times]
        seconds = sum(sum(self._times[k]) / len(self._times[k]) for k in timed)
        return seconds, len(left) - len(timed)

    def _eta_text(self) -> str:
        if not self.done:
            return ""
        parts = [f"elapsed {format_seconds(time.perf_counter() - self.start)}"]
        seconds, untimed = self.eta()
        if untimed < len(self.kinds) - self.done:
            parts.append(f"about {format_seconds(seconds)} left" + (f" + {untimed} item(s) not timed yet"
                                                                     if untimed else ""))
        return f" ({', '.join(parts)})"


__all__ = ["Bar", "StageCounter", "bar", "describe", "format_seconds", "interactive", "note", "once", "remark",
           "scope", "track", "warn"]
