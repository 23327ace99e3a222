"""Any lrdoctor schedule as a Keras 3 ``LearningRateSchedule``.

Keras calls the schedule with the optimizer's iteration counter. Eagerly (the torch and numpy
backends, and TensorFlow outside ``tf.function``) the step is read as an integer and the closed
form is evaluated exactly; on a symbolic step (a traced graph) the schedule is looked up in a
table of its values over ``horizon`` steps, clamped at the end, so the same spec works there too.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from lrdoctor.errors import ScheduleError
from lrdoctor.schedules import Schedule, parse

__all__ = ["SpecSchedule", "schedule"]

#: Keras holds the lr in float32: a larger one (only a growing ``sgdr(decay>1)`` reaches it)
#: is held at float32's largest value rather than becoming inf.
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: the longest lookup table a traced step builds (float32: 16 MiB); past it ``horizon`` must say
#: how many steps will be traced instead of the schedule's duration
MAX_TABLE = 1 << 22


@keras.saving.register_keras_serializable(package="lrdoctor")
class SpecSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A Keras learning-rate schedule defined by an lrdoctor spec; ``get_config`` is the spec.

    ``horizon`` bounds the lookup table used for symbolic steps (default: the schedule's
    duration, or 100,000 steps for open-ended schedules). A table of more than ``MAX_TABLE``
    (4,194,304) steps is refused with a :class:`ScheduleError` at the first traced call, which
    names ``horizon``: eager calls evaluate the closed form at any step and need no table.
    """

    def __init__(self, spec: str | Schedule, horizon: int | None = None) -> None:
        super().__init__()
        self.schedule = parse(spec)
        self.spec = self.schedule.to_spec()
        if horizon is not None and (not isinstance(horizon, int) or horizon < 1):
            raise ScheduleError(f"horizon must be a whole number of steps >= 1, got {horizon!r}")
        self.horizon = horizon
        self._table: Any = None

    def __call__(self, step: Any) -> Any:
        try:
            k = int(keras.ops.convert_to_numpy(step))
        except Exception:  # noqa: BLE001 (keras raises several types:) a symbolic tensor inside a traced function
            return self._lookup(step)
        return keras.ops.convert_to_tensor(min(self.schedule(k), _FLOAT32_MAX), dtype="float32")

    def _lookup(self, step: Any) -> Any:
        if self._table is None:
            n = self.horizon or self.schedule.duration or 100_000
            if n + 1 > MAX_TABLE:
                raise ScheduleError(
                    f"a traced step looks the lr up in a table of {n + 1:,} steps ({'horizon' if self.horizon else 'the schedule duration'}), "
                    f"more than {MAX_TABLE:,}: pass horizon=N, the number of steps you will train "
                    f"(at most {MAX_TABLE - 1:,}), or run the training step eagerly")
            table = np.minimum(self.schedule.values(n + 1), _FLOAT32_MAX)
            self._table = keras.ops.convert_to_tensor(table, dtype="float32")
        last = int(self._table.shape[0]) - 1
        index = keras.ops.minimum(keras.ops.cast(step, "int32"), last)
        return keras.ops.take(self._table, index)

    def get_config(self) -> dict[str, Any]:
        return {"spec": self.spec, "horizon": self.horizon}

    def values(self, steps: int) -> np.ndarray:
        """The first ``steps`` learning rates, for previews."""
        return self.schedule.values(steps)


def schedule(spec: str | Schedule, *, horizon: int | None = None) -> SpecSchedule:
    """Wrap a spec or schedule for ``keras.optimizers.Adam(learning_rate=schedule("..."))``."""
    return SpecSchedule(spec, horizon=horizon)
