"""TensorBoard event files and run directories, through tensorboard's own reader.

Needs the ``tensorboard`` extra (``pip install 'lrdoctor[tensorboard]'``). Scalars written as
``simple_value`` (torch ``SummaryWriter``, HF Trainer) and as rank-0 tensors (TF2/Keras
``tf.summary``) are both read. In a directory each sub-folder holding event files is one
writer; a sub-folder named ``train``/``validation`` (the Keras TensorBoard callback's layout)
prefixes its tags with that split.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lrdoctor.errors import LogFormatError
from lrdoctor.logs._model import LogBuilder, TrainingLog
from lrdoctor.logs._names import canonical

__all__ = ["is_event_file", "read_tensorboard"]

_SPLIT_DIRS = {"train", "training", "validation", "val", "valid", "eval", "test"}


def is_event_file(path: Path) -> bool:
    return "tfevents" in path.name


def _accumulator(target: Path):
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError as err:
        raise LogFormatError(
            f"{target} is a TensorBoard log; reading it needs tensorboard: "
            "pip install 'lrdoctor[tensorboard]'") from err
    acc = event_accumulator.EventAccumulator(
        str(target), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0})
    # tensorboard logs corrupted records itself; keep its chatter out of ours
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    try:
        acc.Reload()  # a corrupted record ends the read there; what came before is kept
    except Exception as err:  # noqa: BLE001 - tensorboard raises its own and protobuf's errors
        raise LogFormatError(f"{target}: TensorBoard could not read these event files "
                             f"({type(err).__name__}: {' '.join(str(err).split())[:160]})") from None
    return acc


def read_tensorboard(path: Path) -> TrainingLog:
    """Read an event file, or every event file under a directory."""
    b = LogBuilder()
    if path.is_dir():
        dirs = sorted({p.parent for p in path.rglob("*tfevents*") if p.is_file()})
        if not dirs:
            raise LogFormatError(f"{path}: no TensorBoard event files (events.out.tfevents.*) here")
        targets = [(d, d.relative_to(path).parts) for d in dirs]
    else:
        targets = [(path, ())]
    for target, parts in targets:
        prefix = next((p for p in reversed(parts) if p.lower() in _SPLIT_DIRS), None)
        _read_one(_accumulator(target), prefix, b)
    log = b.build(source=str(path), format="tensorboard", step_unit="step")
    if not len(log):
        raise LogFormatError(f"{path}: the event files hold no scalar summaries")
    return log


def _read_one(acc, prefix: str | None, b: LogBuilder) -> None:
    tags = acc.Tags()
    for tag in tags.get("scalars", []):
        name = canonical(f"{prefix}/{tag}" if prefix else tag)
        if name is None:
            continue
        for ev in acc.Scalars(tag):
            b.add(name, ev.step, ev.value)
    tensor_tags = tags.get("tensors", [])
    if tensor_tags:
        from tensorboard.util import tensor_util
        for tag in tensor_tags:
            name = canonical(f"{prefix}/{tag}" if prefix else tag)
            if name is None:
                continue
            for ev in acc.Tensors(tag):
                try:
                    arr = tensor_util.make_ndarray(ev.tensor_proto)
                except Exception:  # noqa: BLE001 (tensorboard raises several types:) non-numeric tensors (text, images) are not metrics
                    break
                if arr.size == 1 and arr.dtype.kind in "fiu":
                    b.add(name, ev.step, float(arr.reshape(-1)[0]))
                else:
                    break
