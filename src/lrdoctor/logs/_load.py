"""``load(path)``: open a training log of any supported format, detected from its content."""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path

from lrdoctor.errors import LogFormatError
from lrdoctor.logs._csv import read_csv
from lrdoctor.logs._json import read_json, read_jsonl
from lrdoctor.logs._mlflow import is_mlflow, read_mlflow
from lrdoctor.logs._model import TrainingLog, logger
from lrdoctor.logs._tensorboard import is_event_file, read_tensorboard
from lrdoctor.logs._wandb import is_wandb, read_wandb

__all__ = ["FORMATS", "load"]

#: Accepted values of ``load(path, format=...)``.
FORMATS = ("auto", "lrdoctor-jsonl", "jsonl", "csv", "keras-csv", "lightning-csv",
           "hf-trainer-state", "keras-history", "tensorboard", "mlflow", "wandb")


def load(path: str | os.PathLike[str], *, format: str = "auto",
         run: str | None = None) -> TrainingLog:
    """Read a training log (a file or a run directory); the format is detected from the content.

    Files: our JSONL, Keras CSVLogger / any CSV with a header, Lightning ``metrics.csv``, HF
    ``trainer_state.json``, Keras History JSON, TensorBoard ``events.out.tfevents.*``.
    Directories: the newest ``trainer_state.json`` / ``metrics.csv`` / JSONL found, or the event
    files under it. MLflow (``mlflow.db``, an ``mlruns/`` tree or one run folder of it) and W&B
    (``run-*.wandb``, its run folder, a ``wandb/`` folder) through their own libraries; ``run``
    picks one run of a store or folder holding several. Raises
    :class:`~lrdoctor.errors.LogFormatError` with the reason and what to do.
    """
    p = Path(path)
    if format not in FORMATS:
        raise LogFormatError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if not p.exists():
        if p.is_symlink():
            raise LogFormatError(f"{p} is a symbolic link to nothing, or to itself (a loop); "
                                 "pass the log file it should point to")
        raise FileNotFoundError(2, "No such file or directory", str(p))
    if format == "mlflow" or (format == "auto" and is_mlflow(p)):
        return read_mlflow(p, run=run)
    if format == "wandb" or (format == "auto" and is_wandb(p)):
        return read_wandb(p, run=run)
    if run is not None:
        raise LogFormatError(f"run={run!r} (--run) picks a run of an MLflow store or a W&B "
                             f"folder, and {p} is neither; drop it")
    if p.is_dir():
        return _load_dir(p, format)
    if format == "tensorboard" or (format == "auto" and is_event_file(p)):
        return read_tensorboard(p)
    log = _load_file(p, format)
    return log


def _load_file(p: Path, format: str) -> TrainingLog:
    """One text (or TensorBoard) file: decoded, then read by the reader its content calls for."""
    raw = p.read_bytes()
    text, note, exact = _decode(raw)
    if text is None:
        if format == "auto" and _looks_like_tfrecord(raw):
            return read_tensorboard(p)
        raise LogFormatError(f"{p} is a binary file, not a training log (expected CSV, JSON, "
                             "JSONL or TensorBoard events)")
    log = _read_text(p, text, format, raw=exact)
    if note:
        message = f"{p}: {note}"
        logger.warning(message)
        log.warnings.insert(0, message)
    return log


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def _decode(raw: bytes) -> tuple[str | None, str | None, bytes | None]:
    """The text of a log file, a note on how it was decoded and the bytes whose UTF-8 the text
    is exactly (for the columnar readers; else None), or (None, None, None) when the bytes are
    binary. A byte-order mark decides (UTF-8, UTF-16, UTF-32); else UTF-8, where a multi-byte
    character cut at the very end is replaced; else Latin-1, with a note."""
    for bom, codec in _BOMS:  # a NUL-padded tail (power loss): the file is cut there
        if raw.startswith(bom):
            return raw.decode(codec, errors="replace").rstrip("\x00"), None, None
    raw = raw.rstrip(b"\x00")
    if _looks_binary(raw):
        return None, None, None
    try:
        return raw.decode("utf-8"), None, raw
    except UnicodeDecodeError as err:
        if err.start >= len(raw) - 3:  # only a character cut off by the end of the file
            return raw.decode("utf-8", errors="replace"), None, None
        where = raw.count(b"\n", 0, err.start) + 1
        return raw.decode("latin-1"), (f"not UTF-8 (byte {raw[err.start]:#04x} on line {where}); "
                                       "read it as Latin-1"), None


def _read_text(p: Path, text: str, format: str, *, raw: bytes | None = None) -> TrainingLog:
    if not text or text.isspace():
        raise LogFormatError(f"{p} is empty: nothing was logged yet, or the wrong file was given")
    if format in ("csv", "keras-csv", "lightning-csv"):
        return read_csv(p, text=text)
    if format in ("jsonl", "lrdoctor-jsonl"):
        return read_jsonl(p, text, raw=raw)
    if format in ("hf-trainer-state", "keras-history"):
        return read_json(p, text, raw=raw)
    head = text[:4096]  # where the content starts, without copying a big text
    i = len(head) - len(head.lstrip()) if not head.isspace() else len(text) - len(text.lstrip())
    if text.startswith("{", i):
        end = text.find("\n", i)
        first = (text[i:] if end < 0 else text[i:end]).strip()
        k = len(text)
        while k > i and text[k - 1] in "\r\n":
            k -= 1
        # more than one line: a line end before the last
        if first.endswith("}") and (text.find("\n", i, k) >= 0 or text.find("\r", i, k) >= 0) \
                and _one_object(first):
            return read_jsonl(p, text, raw=raw)
        return read_json(p, text, raw=raw)
    if text.startswith("[", i):
        return read_json(p, text)
    return read_csv(p, text=text)


def _is_monitor_log(path: Path) -> bool:
    """True when the file starts with our Monitor's meta line."""
    import json
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = json.loads(fh.readline(65536) or "null")
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(first, dict) and first.get("type") == "meta" and "every" in first


def _one_object(line: str) -> bool:
    import json
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


def _looks_binary(raw: bytes) -> bool:
    return b"\x00" in raw[:4096]


def _looks_like_tfrecord(raw: bytes) -> bool:
    return b"brain.Event" in raw[:256] or b"tfevents" in raw[:1024] or raw[12:16] == b"\t\x00\x00"


def _newest(paths: list[Path]) -> Path:
    def key(q: Path) -> tuple:
        nums = [int(n) for n in re.findall(r"\d+", str(q))]
        return (nums, q.stat().st_mtime)
    return max(paths, key=key)


_RANK_COPY = re.compile(r"\.rank[1-9]\d*\.jsonl$")


def _load_dir(p: Path, format: str) -> TrainingLog:
    if format == "tensorboard":
        return read_tensorboard(p)
    jsonl = sorted(q for q in p.rglob("*.jsonl") if q.is_file())  # not a folder or a loop
    ours = [q for q in jsonl if _is_monitor_log(q)]
    # RankMonitor(write="all"): log.jsonl is rank 0's, log.rank<N>.jsonl the other ranks' copies
    rank0 = [q for q in ours if not _RANK_COPY.search(q.name)]
    ours = rank0 or ours
    candidates = [
        ours,
        [q for q in p.rglob("trainer_state.json") if q.is_file()],
        [q for q in p.rglob("metrics.csv") if q.is_file()],
        [] if ours else [q for q in jsonl if not q.name.startswith("journal")],
    ]
    for group in candidates:
        if group:
            chosen = group[0] if len(group) == 1 else _newest(group)
            if len(group) > 1:
                logger.warning("%s holds %d candidate logs; reading %s", p, len(group), chosen)
            return load(chosen, format=format)
    if any(q.is_file() for q in p.rglob("*tfevents*")):
        return read_tensorboard(p)
    others = sorted(q for q in p.rglob("*") if q.suffix in (".csv", ".log", ".json") and q.is_file())
    if len(others) == 1:
        return load(others[0], format=format)
    raise LogFormatError(
        f"{p}: found no training log (looked for *.jsonl, trainer_state.json, metrics.csv, "
        f"events.out.tfevents.*{', and one CSV/JSON file' if not others else ''}); "
        + (f"{len(others)} CSV/JSON files are here, pass one of them" if others else
           "pass the log file itself"))
