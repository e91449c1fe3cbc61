"""User-facing errors.

Every problem with what a user handed us (a file, a field, an argument) raises :class:`QRProbeInputError`
with a message that names the offending thing and says what was expected. The CLI turns it into a one-line
message on stderr and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class QRProbeError(Exception):
    """Base class of qrprobe's own errors."""


class QRProbeInputError(QRProbeError, ValueError):
    """Bad input: a missing file, a malformed artifact, an invalid argument or data value."""


class ParameterError(QRProbeInputError):
    """A bad value of a named parameter. ``str()`` is ``"name: message"``; front ends re-label the name (the
    CLI as its flag ``--name``, the study loader as its location in the file) through :meth:`relabel`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message

    def relabel(self, label: str) -> str:
        """The message with the parameter called ``label`` (e.g. ``"--lr"``)."""
        return f"{label}: {self.message}"


class MissingExtraError(QRProbeError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str, what: str = "") -> None:
        purpose = f" for {what}" if what else ""
        super().__init__(
            f"the optional dependency {module!r} is needed{purpose}; install it with "
            f"`pip install 'qrprobe[{extra}]'`"
        )
        self.module = module
        self.extra = extra


def require(module: str, extra: str, what: str = ""):
    """Import and return an optional module, or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(module, extra, what) from exc
