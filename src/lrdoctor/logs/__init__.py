"""Training logs from any framework, in one columnar model.

``load(path)`` reads our JSONL, Keras CSVLogger / History JSON, Lightning ``metrics.csv``, HF
``trainer_state.json``, generic CSV and TensorBoard event files into a :class:`TrainingLog`
whose series carry canonical names (``train/loss``, ``val/accuracy``, ``lr``, ``grad_norm``, …;
see :mod:`lrdoctor.logs._names`). Readers are framework-free (TensorBoard needs the
``tensorboard`` extra); malformed input raises :class:`LogFormatError` or gives a partial log
whose ``warnings`` say what was skipped (also sent to the ``lrdoctor.logs`` logger).

>>> import numpy as np
>>> log = TrainingLog({"train/loss": Series(np.arange(3), np.array([2.0, 1.5, 1.2]))})
>>> log.get("train/loss").values.tolist()
[2.0, 1.5, 1.2]
"""

from lrdoctor.errors import LogFormatError
from lrdoctor.logs._load import FORMATS, load
from lrdoctor.logs._model import Event, LogBuilder, Series, TrainingLog
from lrdoctor.logs._names import canonical

__all__ = ["FORMATS", "Event", "LogBuilder", "LogFormatError", "Series", "TrainingLog",
           "canonical", "load"]
