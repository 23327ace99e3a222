"""Writing a result file without replacing what its path points to.

:func:`write_file` is the one place the package writes a result (JSON, CSV, HTML, a picture):

- a path that does not exist yet, or names a regular file, is written atomically: the bytes go
  to a temporary file in the same folder, which is then renamed over the target, so a reader
  never sees half a file;
- a symbolic link is followed and its *target* is written (atomically when the target is a
  regular file); the link itself stays a link;
- a character device, FIFO, socket or other non-regular file (``/dev/stdout``, ``/dev/null``, a
  named pipe) is opened and written in place, never renamed over; so is a regular file reached
  through an open descriptor (``/dev/stderr`` redirected to a file), appended to as the
  process's own writes are;
- a binary file object (``io.BytesIO``, ``sys.stdout.buffer``) is written to as it is.

:func:`save_figure` renders a matplotlib figure to bytes (the format from the file name's
suffix, or the suffix of the link's target, else PNG) and writes them with :func:`write_file`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import stat
from pathlib import Path
from typing import IO, Any

from lrdoctor.errors import LRDoctorError

__all__ = ["Target", "figure_format", "save_figure", "write_file"]

#: a path, or a binary file object with ``write``
Target = str | os.PathLike[str] | IO[bytes]


def _is_file_object(target: object) -> bool:
    return hasattr(target, "write") and not isinstance(target, (str, os.PathLike))


def write_file(target: Target, data: bytes | str, *, encoding: str = "utf-8") -> Path | None:
    """Write ``data`` (``str`` is encoded with ``encoding``) to ``target``; see the module doc.

    Returns the path written through (the link's target for a symlink), ``None`` for a file
    object. Raises ``FileNotFoundError`` when the folder is missing, ``IsADirectoryError`` for a
    folder, ``PermissionError`` for a file that may not be written.
    """
    raw = data.encode(encoding) if isinstance(data, str) else bytes(data)
    if _is_file_object(target):
        target.write(raw)  # type: ignore[union-attr]
        with contextlib.suppress(AttributeError, ValueError):
            target.flush()  # type: ignore[union-attr]
        return None
    name = os.fspath(target)  # type: ignore[arg-type]
    try:
        st: os.stat_result | None = os.stat(name)  # follows links, /proc/self/fd/N included
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "Is a directory", name)
    if st is not None and not stat.S_ISREG(st.st_mode):
        return _write_in_place(name, raw)
    real = os.path.realpath(name)
    if st is not None:
        try:
            same = os.path.samestat(st, os.stat(real))
        except OSError:
            same = False
        if not same:  # a link whose text is no path (e.g. /proc/self/fd/N to a deleted file)
            return _write_in_place(name, raw)
        if _through_descriptor(name):  # /dev/stderr redirected to a file: add to it, as the
            return _write_in_place(name, raw, append=True)  # process's own writes do
        if not os.access(real, os.W_OK):
            raise PermissionError(13, "Permission denied", name)
    folder = os.path.dirname(real) or "."
    if not os.path.isdir(folder):
        raise FileNotFoundError(2, f"the folder {folder} does not exist", name)
    _replace_atomically(real, raw, None if st is None else stat.S_IMODE(st.st_mode))
    return Path(real)


def _through_descriptor(name: str) -> bool:
    """Whether the link chain from ``name`` passes through an open descriptor's magic link
    (``/dev/stdout`` -> ``/proc/self/fd/1``, ``/dev/fd/N``): renaming over the file behind it
    would leave the descriptor on a deleted file."""
    path = os.path.abspath(name)
    for _ in range(40):
        if re.match(r"^/(proc/[^/]+|dev)/fd(/|$)", path):
            return True
        if not os.path.islink(path):
            return False
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    return False


def _write_in_place(name: str, raw: bytes, *, append: bool = False) -> Path:
    with open(name, "ab" if append else "wb") as fh:
        fh.write(raw)
    return Path(name)


def _replace_atomically(real: str, raw: bytes, mode: int | None) -> None:
    """A temporary file beside ``real`` (created 0o666 minus the umask, like ``open``), renamed
    over it; an existing file's permission bits are kept."""
    folder, base = os.path.split(real)
    while True:
        tmp = os.path.join(folder or ".", f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_PICTURES = ("png", "svg", "pdf", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp", "svgz",
             "pgf", "raw", "rgba")


def figure_format(target: Target) -> str:
    """The picture format for ``target``: its suffix, else its link target's suffix, else PNG.

    Raises ``LRDoctorError`` for a suffix matplotlib cannot write (``lr.txt``).
    """
    if _is_file_object(target):
        return "png"
    name = os.fspath(target)  # type: ignore[arg-type]
    for candidate in (name, os.path.realpath(name)):
        suffix = Path(candidate).suffix.lower().lstrip(".")
        if suffix and not any(c in suffix for c in "[]:"):  # 'pipe:[123]' is no suffix
            if suffix not in _PICTURES:
                raise LRDoctorError(f"cannot write the picture {name}: '.{suffix}' is not a "
                                    f"picture format (use .png, .svg or .pdf)")
            return suffix
    return "png"


def save_figure(fig: Any, target: Target, **savefig: Any) -> Path | None:
    """Render the matplotlib ``fig`` (``savefig`` options such as ``dpi``) and write it to
    ``target`` with :func:`write_file`."""
    buf = io.BytesIO()
    fig.savefig(buf, format=savefig.pop("format", None) or figure_format(target), **savefig)
    return write_file(target, buf.getvalue())
