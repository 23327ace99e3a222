"""``Guard``: the Keras 3 callback of :class:`lrdoctor.torch.Guard`, on the same decision core
(:mod:`lrdoctor._guard_core`); backend-agnostic (``keras.ops`` and variables only).

    model.fit(x, y, callbacks=[Guard(journal="runs/a/guard.jsonl")])

Keras applies a batch's update inside ``train_step``, before any callback sees that batch's
loss, so a callback cannot skip a batch the way the torch loop does. What this one does
instead, at the end of every batch:

- it reads the batch's own loss (the difference of the loss tracker's running total and count
  since the previous batch, not Keras' running epoch mean) and judges it with the torch Guard's
  test: NaN/Inf, or a spike against the run's own recent statistics (in log space,
  ``(log(loss) - m) / max(s, 0.05) > z`` and ``loss > ratio * exp(m)``, see the core);
- on an accepted batch it copies the model's variables (weights, normalization statistics,
  dropout seed states) and the optimizer's variables (iteration count, slots; not the learning
  rate, which other callbacks own) every ``snapshot_every`` (10) batches, on the device; the
  last three are kept;
- on a rejected batch the update has already happened, so it **undoes** it: it restores the
  newest snapshot taken at least 2 batches before the first bad one, which also drops the good
  batches since that snapshot (at most ``snapshot_every + 2``; the data goes on, nothing is
  replayed), and puts the loss tracker back to its value before the bad batch, so the epoch's
  reported loss leaves it out. That is a 'skip' event;
- when ``patience`` batches in a row were bad, the restore is a 'rewind': the LR is also scaled
  by ``lr_factor``, rising linearly back to 1 over ``cooldown_steps`` batches (set at each
  batch's start and put back at its end, so other callbacks read the unscaled value; a
  ``LearningRateSchedule`` is wrapped for that time);
- more than ``max_rewinds`` rewinds within ``rewind_window`` batches raise
  :class:`~lrdoctor.errors.GuardError` out of ``fit``, naming what it saw.

Every action is a :class:`~lrdoctor.torch.GuardEvent` in ``events`` and, with ``journal``, an
entry of cause ``guard`` that ``lrdoctor explain`` prints. Batches are counted from 0 over the
whole ``fit``. There is no gradient test: Keras hands callbacks no gradients (a NaN gradient
shows as a NaN loss one batch later, and that batch's restore goes back past it).
"""

from __future__ import annotations

from typing import Any

import keras

from lrdoctor._guard_core import GuardCore, GuardEvent, GuardReport, GuardSettings
from lrdoctor.errors import LRDoctorError
from lrdoctor.journal import Journal

__all__ = ["Guard"]

_Schedule = keras.optimizers.schedules.LearningRateSchedule


@keras.saving.register_keras_serializable(package="lrdoctor")
class GuardLoweredSchedule(_Schedule):
    """``schedule(step) × scale`` while the Guard lowers a scheduled LR after a rewind."""

    def __init__(self, schedule: Any, scale: float = 1.0) -> None:
        super().__init__()
        self.schedule = schedule
        self.scale = keras.Variable(float(scale), trainable=False, dtype="float32",
                                    name="guard_scale")

    def __call__(self, step: Any) -> Any:
        return keras.ops.multiply(self.schedule(step), self.scale)

    def get_config(self) -> dict[str, Any]:
        return {"schedule": keras.saving.serialize_keras_object(self.schedule),
                "scale": float(keras.ops.convert_to_numpy(self.scale))}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GuardLoweredSchedule:
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["scale"])


class Guard(GuardReport, keras.callbacks.Callback):
    """Undo bad batches and rewind damaged training in ``model.fit`` (see the module doc).

    The keywords are the torch Guard's, with its defaults except ``snapshot_every`` (10, not
    25: here every rejected batch is undone by a restore, which drops the good batches since
    the snapshot too; a snapshot costs one device copy of the variables). ``events`` lists
    every action.
    """

    def __init__(self, *, journal: Journal | str | None = None, snapshot_every: int = 10,
                 window: int = 100, min_history: int = 20, z: float = 10.0, ratio: float = 3.0,
                 patience: int = 5, lr_factor: float = 0.5, cooldown_steps: int = 50,
                 max_rewinds: int = 3, rewind_window: int = 1000) -> None:
        super().__init__()
        self.settings = GuardSettings(
            snapshot_every=snapshot_every, window=window, min_history=min_history, z=float(z),
            ratio=float(ratio), patience=patience, lr_factor=float(lr_factor),
            cooldown_steps=cooldown_steps, max_rewinds=max_rewinds, rewind_window=rewind_window)
        self.journal = Journal(journal) if isinstance(journal, (str, bytes)) or (
            journal is not None and not isinstance(journal, Journal)) else journal
        self.core: GuardCore[list[Any]] = GuardCore(self.settings, check_grads=False)
        self.events: list[GuardEvent] = self.core.events
        self.step = 0            # batches judged in this fit
        self._vars: list[Any] = []
        self._tracker: Any = None
        self._prev = (0.0, 0.0)  # the tracker's (total, count) after the last accepted batch
        self._base: Any = None   # the LR (or schedule) put back after a lowered batch
        self._wrapper: GuardLoweredSchedule | None = None

    # ---- fit -------------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        opt = getattr(self.model, "optimizer", None)
        if opt is None:
            raise LRDoctorError("Guard needs a compiled model (model.compile(optimizer=..., "
                                "loss=...)) before fit")
        self._opt = opt
        self._tracker = getattr(self.model, "_loss_tracker", None) or next(
            (m for m in self.model.metrics if m.name == "loss"), None)
        if self._tracker is None or not hasattr(self._tracker, "total"):
            raise LRDoctorError("Guard reads the batch loss from the model's loss tracker, and "
                                "this model has none; compile it with loss=...")
        lr_var = getattr(opt, "_learning_rate", None)
        self._vars = [*self.model.variables,
                      *(v for v in opt.variables if v is not lr_var)]
        self.step, self._prev = 0, (0.0, 0.0)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._prev = (float(self._tracker.total), float(self._tracker.count))

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.core.cool_left > 0:
            self._lower(self.core.lr_scale())

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        k = self.step
        self.step += 1
        if self._base is not None:
            self._unlower()
            self.core.stepped()
        total, count = float(self._tracker.total), float(self._tracker.count)
        n = count - self._prev[1]
        value = (total - self._prev[0]) / n if n > 0 else float("nan")
        core = self.core
        reason, stats = core.judge(value)
        if reason is None:
            self._prev = (total, count)
            if core.accept(k, value, label=k + 1):
                core.keep(k + 1, [keras.ops.copy(v.value) for v in self._vars])
            return
        action = core.reject(k, reason, value)
        if not core.snapshots:   # nothing to go back to yet: the batch's update stays
            self._put_tracker()
            self._event(k, "skip", reason, core.why(reason, value, None, stats)
                        + "; no snapshot yet, so the update could not be undone", stats, value)
            return
        if action == "rewind":
            recent = core.too_many(k)
            if recent is not None:
                err = core.stop(k, reason, core.evidence(value, None, stats), recent)
                self._journal(core.events[-1], None, None)
                raise err
        first = core.bad[0][0]
        label, saved = core.restore_point()
        for v, s in zip(self._vars, saved):
            v.assign(keras.ops.copy(s))
        self._put_tracker()
        why = core.why(reason, value, None, stats)
        undone = f"restored the snapshot of batch {label}, undoing batches {label}-{k}"
        extra = {"restored": label, "undone": k - label + 1, "first_bad": first}
        if action == "skip":
            self._event(k, "skip", reason,
                        f"{why}; Keras had applied its update, so the guard {undone} "
                        f"({len(core.bad)} bad in a row, patience {self.settings.patience})",
                        stats, value, extra)
            return
        s = self.settings
        old = self._lr()
        core.rewound(k)
        self._event(k, "rewind", reason,
                    f"{why} and {s.patience} batches in a row since batch {first} were bad: "
                    f"{undone}, and lowered the lr by {s.lr_factor:g}x for {s.cooldown_steps} "
                    "steps", stats, value,
                    {**extra, "lr_factor": s.lr_factor, "cooldown_steps": s.cooldown_steps},
                    [old], [old * s.lr_factor])

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._base is not None:
            self._unlower()

    # ---- helpers ---------------------------------------------------------------------------
    def _put_tracker(self) -> None:
        """The loss tracker as it was before the bad batch (it would carry a NaN to the end
        of the epoch)."""
        self._tracker.total.assign(self._prev[0])
        self._tracker.count.assign(self._prev[1])

    def _lr(self) -> float:
        return float(keras.ops.convert_to_numpy(self._opt.learning_rate))

    def _lower(self, scale: float) -> None:
        lr = self._opt._learning_rate
        if isinstance(lr, _Schedule):
            if self._wrapper is None or self._wrapper.schedule is not lr:
                self._wrapper = GuardLoweredSchedule(lr)
            self._wrapper.scale.assign(scale)
            self._base = lr
            self._opt.learning_rate = self._wrapper
        else:
            self._base = float(keras.ops.convert_to_numpy(lr))
            self._opt.learning_rate = self._base * scale

    def _unlower(self) -> None:
        base, self._base = self._base, None
        self._opt.learning_rate = base

    def _event(self, k: int, action: str, reason: str, message: str, stats: dict[str, float],
               value: float, extra: dict[str, Any] | None = None,
               old: list[float] | None = None, new: list[float] | None = None) -> None:
        ev = self.core.record(k, action, reason, message,
                              {**self.core.evidence(value, None, stats), **(extra or {})})
        self._journal(ev, old, new)

    def _current_lrs(self) -> list[float]:
        return [self._lr()]
