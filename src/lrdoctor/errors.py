"""The package's exceptions: every user-facing error is a ``ValueError`` subclass.

Messages say which parameter was wrong, what was expected and what to do, on one line, so the
CLI can print them as they are.
"""

from __future__ import annotations

__all__ = ["FinderError", "GuardError", "LRDoctorError", "LogFormatError", "PlateauError",
           "ScheduleError", "UnsupportedChange"]


class LRDoctorError(ValueError):
    """Base class of every error lrdoctor raises on bad input."""


class ScheduleError(LRDoctorError):
    """A schedule or spec string is invalid.

    When the error comes from parsing, ``spec`` holds the text and ``column`` the 1-based column
    of the offending token; :meth:`pointer` draws a caret under it.
    """

    def __init__(self, message: str, *, spec: str | None = None, column: int | None = None):
        self.reason = message
        self.spec = spec
        self.column = column
        if spec is not None and column is not None:
            message = f"column {column}: {message} (in {spec!r})"
        super().__init__(message)

    def pointer(self) -> str:
        """The spec with a caret under the offending column, for terminals."""
        if self.spec is None or self.column is None:
            return ""
        return f"{self.spec}\n{' ' * (self.column - 1)}^"


class PlateauError(LRDoctorError):
    """Invalid plateau-reduction or early-stopping settings."""


class FinderError(LRDoctorError):
    """The LR range test cannot run on the given inputs."""


class LogFormatError(LRDoctorError):
    """A training log cannot be read."""


class UnsupportedChange(LRDoctorError):
    """A ``train_fn`` given to :func:`lrdoctor.repair` cannot apply a knob of a change; repair
    then tries the finding's next alternative. ``knob`` names it."""

    def __init__(self, knob: str, message: str = ""):
        self.knob = knob
        super().__init__(message or f"this train_fn does not support the repair knob {knob!r}")


class GuardError(RuntimeError):
    """A Guard (:class:`lrdoctor.torch.Guard`, :class:`lrdoctor.keras.Guard`, or the Lightning
    and Hugging Face callbacks on the torch one) stopped training: too many rewinds in a window.
    The message says what it saw; ``events`` holds every action it took."""

    def __init__(self, message: str, events: tuple = ()):
        self.events = tuple(events)
        super().__init__(message)
