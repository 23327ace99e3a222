"""Keras 3 ``ReduceLROnPlateau`` and ``EarlyStopping`` on lrdoctor's plateau core, with a journal.

Both subclass the Keras callbacks they replace (``isinstance`` checks keep working) and take the
same arguments with the same defaults and behaviour — Keras' patience convention (reduce at the
``patience``-th bad epoch), its float32 comparisons, its cool-down order — plus keyword extras:
``journal=`` (a :class:`~lrdoctor.journal.Journal` or a JSONL path), and for the reducer
``schedule=`` (a spec: the optimizer's LR becomes ``schedule(iteration) × plateau factor``, with
no reduction during the warm-up unless ``reduce_in_warmup=True``), ``threshold_mode='rel'``,
``max_reductions``, ``nonfinite``, ``stop_at_min_lr``.

Differences, on purpose: an unknown ``mode`` is an error (Keras warns and falls back to
``auto``); ``mode='auto'`` also knows names ending in accuracy/acc/auc/f1/precision/recall/iou/
map/bleu (max) and loss/error/perplexity (min) before asking the model's metrics; a NaN/Inf value
never becomes the best and is journaled.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import keras

from lrdoctor.errors import PlateauError
from lrdoctor.journal import Entry, Journal
from lrdoctor.plateau import (
    EarlyStopConfig,
    EarlyStopState,
    PlateauConfig,
    PlateauState,
    early_stop_update,
    infer_mode,
    update,
    warmup_end,
)
from lrdoctor.plateau._schedule import CAUSE_OF_MARK, marks_between
from lrdoctor.schedules import Schedule

__all__ = ["EarlyStopping", "PlateauScaledSchedule", "ReduceLROnPlateau"]


@keras.saving.register_keras_serializable(package="lrdoctor")
class PlateauScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule(step) × scale``: a spec schedule times the plateau factor, which
    :class:`ReduceLROnPlateau` lowers in a non-trainable variable at each reduction."""

    def __init__(self, spec: str | Schedule, scale: float = 1.0) -> None:
        super().__init__()
        from lrdoctor.keras._schedule import SpecSchedule

        self.base = SpecSchedule(spec)
        self.schedule = self.base.schedule
        self.scale = keras.Variable(float(scale), trainable=False, dtype="float32", name="plateau_scale")

    def __call__(self, step: Any) -> Any:
        return keras.ops.multiply(self.base(step), self.scale)

    def get_config(self) -> dict[str, Any]:
        return {"spec": self.base.spec, "scale": float(keras.ops.convert_to_numpy(self.scale))}


def _journal(journal: Journal | str | os.PathLike[str] | None) -> Journal | None:
    if journal is None or isinstance(journal, Journal):
        return journal
    return Journal(journal)


def _check_mode(mode: str) -> None:
    if mode not in ("auto", "min", "max"):
        raise PlateauError(f"mode must be one of 'auto', 'min', 'max', got {mode!r}")


def _resolve_mode(cb: keras.callbacks.Callback, monitor: str, mode: str) -> str:
    """Our name rules first, then Keras' own (the model's metric directions)."""
    if mode != "auto":
        return mode
    try:
        return infer_mode(monitor)
    except PlateauError:
        pass
    try:
        cb._set_monitor_op()  # Keras' own rule: the model's metric directions
    except ValueError:
        raise PlateauError(
            f"mode='auto' cannot tell whether {monitor!r} should go down or up; "
            "pass mode='min' or mode='max'"
        ) from None
    op = cb.monitor_op
    cb.monitor_op = None
    return "min" if op is keras.ops.less else "max"


def _optimizers(model: Any) -> list[Any]:
    opt = model.optimizer
    return list(opt.optimizers) if hasattr(opt, "optimizers") else [opt]


def _lr(opt: Any) -> float:
    return float(keras.ops.convert_to_numpy(opt.learning_rate))


class ReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Drop-in for ``keras.callbacks.ReduceLROnPlateau`` that journals every decision.

    Example::

        cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, journal="journal.jsonl")
        model.fit(..., callbacks=[cb])
        print("\n".join(cb.journal.explain()))
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        *,
        journal: Journal | str | os.PathLike[str] | None = None,
        schedule: str | Schedule | None = None,
        reduce_in_warmup: bool = False,
        threshold_mode: str = "abs",
        max_reductions: int | None = None,
        nonfinite: str = "bad",
        stop_at_min_lr: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_mode(mode)
        super().__init__(monitor=monitor, factor=factor, patience=patience, verbose=verbose,
                         mode=mode, min_delta=min_delta, cooldown=cooldown, min_lr=min_lr, **kwargs)
        self.threshold_mode = threshold_mode
        self.max_reductions = max_reductions
        self.nonfinite = nonfinite
        self.stop_at_min_lr = stop_at_min_lr
        self.journal = _journal(journal)
        self.schedule = None if schedule is None else PlateauScaledSchedule(schedule)
        self.warmup_steps = 0 if self.schedule is None else warmup_end(self.schedule.schedule)
        self.reduce_in_warmup = reduce_in_warmup
        self._last_eval_step = 0
        self._last_eval_lrs: list[float] | None = None
        # validate everything now (the direction of 'auto' may need the model: checked later)
        self._settings(mode if mode != "auto" else "min")
        self._mode: str | None = None if mode == "auto" else mode
        self.best_epoch: int | None = None
        self.evaluations = 0
        self.num_reductions = 0
        self.exhausted = False
        self._missing_warned = False

    def _settings(self, mode: str) -> PlateauConfig:
        return PlateauConfig(
            monitor=self.monitor, mode=mode, factor=self.factor, patience=self.patience,
            threshold=abs(self.min_delta), threshold_mode=self.threshold_mode,
            cooldown=self.cooldown, min_lr=self.min_lr, convention="keras",
            max_reductions=self.max_reductions, nonfinite=self.nonfinite,
            stop_at_min_lr=self.stop_at_min_lr,
        )

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.best_epoch, self.evaluations, self.num_reductions, self.exhausted = None, 0, 0, False
        if self.schedule is not None:
            optimizers = _optimizers(self.model)
            if len(optimizers) != 1:
                raise PlateauError("schedule= needs a model with a single optimizer")
            self.schedule.scale.assign(1.0)
            optimizers[0].learning_rate = self.schedule  # the schedule times the plateau factor
            self._last_eval_step, self._last_eval_lrs = 0, [_lr(optimizers[0])]

    def _step(self) -> int | None:
        if self.schedule is None:
            return None
        return int(keras.ops.convert_to_numpy(_optimizers(self.model)[0].iterations))

    def _journal_schedule(self, epoch: int, lrs: list[float]) -> None:
        """Warm-up end, restarts and the schedule's own moves since the last evaluation."""
        if self.schedule is None or self.journal is None:
            return
        k, spec = self._step() or 0, self.schedule.base.spec
        before = self._last_eval_lrs or lrs
        scale = float(keras.ops.convert_to_numpy(self.schedule.scale))
        for step, label in marks_between(self.schedule.schedule, self._last_eval_step, k):
            cause = CAUSE_OF_MARK.get(label)
            if cause is not None:
                at = [self.schedule.schedule(step) * scale]
                self.journal.append(Entry(cause, epoch=epoch, step=step,
                                          old_lrs=[self.schedule.schedule(step - 1) * scale], new_lrs=at,
                                          evidence={"label": label, "schedule": spec}))
                before = at
        if any(abs(a - b) > 1e-12 * max(abs(a), abs(b)) for a, b in zip(before, lrs)):
            self.journal.append(Entry("schedule", epoch=epoch + 1, step=k, old_lrs=before, new_lrs=lrs,
                                      evidence={"schedule": spec, "from_step": self._last_eval_step}))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._mode is None:
            self._mode = _resolve_mode(self, self.monitor, self.mode)
        config = self._settings(self._mode)
        logs = logs if logs is not None else {}
        optimizers = _optimizers(self.model)
        if len(optimizers) > 1:
            for opt in optimizers:
                logs[f"learning_rate_{opt.name}"] = _lr(opt)
        else:
            logs["learning_rate"] = _lr(optimizers[0])
        current = logs.get(self.monitor)
        lrs = [_lr(o) for o in optimizers]
        if current is None:
            msg = (f"Learning rate reduction is conditioned on metric `{self.monitor}` which is "
                   f"not available. Available metrics are: {','.join(list(logs.keys()))}.")
            warnings.warn(msg, stacklevel=2)
            if self.journal is not None and not self._missing_warned:
                self.journal.append(Entry("warning", epoch=epoch + 1, old_lrs=lrs, new_lrs=lrs,
                                          evidence={"monitor": self.monitor}, message=msg))
            self._missing_warned = True
            return
        state = PlateauState(
            evaluations=self.evaluations, best=self.best, best_evaluation=self.best_epoch,
            num_bad=self.wait, cooldown_counter=self.cooldown_counter,
            reductions=self.num_reductions, exhausted=self.exhausted,
        )
        self._journal_schedule(epoch, lrs)
        k = self._step()
        hold = k is not None and k < self.warmup_steps and not self.reduce_in_warmup
        out = update(config, state, float(current), lrs, hold=hold)
        st = out.state
        self.evaluations, self.best, self.best_epoch = st.evaluations, st.best, st.best_evaluation
        self.wait, self.cooldown_counter = st.num_bad, st.cooldown_counter
        self.num_reductions, self.exhausted = st.reductions, st.exhausted
        for opt, old, new, changed in zip(optimizers, lrs, out.lrs, out.changed):
            if changed and self.schedule is not None:
                if old > 0:
                    scale = float(keras.ops.convert_to_numpy(self.schedule.scale))
                    self.schedule.scale.assign(scale * new / old)
            elif changed:
                opt.learning_rate = new
            if changed and self.verbose > 0:
                name = f" {opt.name}" if len(optimizers) > 1 else ""
                keras.utils.io_utils.print_msg(
                    f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing{name} learning rate to {new}.")
        if self.journal is not None:
            ev = dict(out.evidence)
            ev["min_lr"] = [float(self.min_lr)] * len(lrs)
            new_lrs = [_lr(o) for o in optimizers]
            if out.reduced:
                self.journal.append(Entry(out.cause or "plateau", epoch=epoch + 1, step=k, old_lrs=lrs,
                                          new_lrs=new_lrs, evidence=ev))
            elif out.nonfinite:
                self.journal.append(Entry("nonfinite", epoch=epoch + 1, step=k, old_lrs=lrs, new_lrs=lrs,
                                          evidence=ev))
            if out.stop:
                self.journal.append(Entry("early-stop", epoch=epoch + 1, step=k, old_lrs=new_lrs,
                                          new_lrs=new_lrs, evidence={**ev, "reason": "min_lr"}))
        self._last_eval_step, self._last_eval_lrs = k or 0, [_lr(o) for o in optimizers]
        if out.stop:
            self.model.stop_training = True


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Drop-in for ``keras.callbacks.EarlyStopping`` that journals the stop and its evidence."""

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
        *,
        journal: Journal | str | os.PathLike[str] | None = None,
        min_delta_mode: str = "abs",
    ) -> None:
        _check_mode(mode)
        super().__init__(monitor=monitor, min_delta=min_delta, patience=patience, verbose=verbose,
                         mode=mode, baseline=baseline, restore_best_weights=restore_best_weights,
                         start_from_epoch=start_from_epoch)
        self.min_delta_mode = min_delta_mode
        self.journal = _journal(journal)
        self._config(mode if mode != "auto" else "min")  # validate now
        self._mode: str | None = None if mode == "auto" else mode
        self._missing_warned = False
        self.es_state = EarlyStopState()

    def _config(self, mode: str) -> EarlyStopConfig:
        return EarlyStopConfig(
            monitor=self.monitor, mode=mode, min_delta=abs(self.min_delta), patience=self.patience,
            baseline=self.baseline, start_from_epoch=self.start_from_epoch,
            restore_best=self.restore_best_weights, min_delta_mode=self.min_delta_mode,
        )

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.es_state = EarlyStopState()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._mode is None:
            self._mode = _resolve_mode(self, self.monitor, self.mode)
        config = self._config(self._mode)
        current = (logs or {}).get(self.monitor)
        if current is None:
            msg = (f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                   f"Available metrics are: {','.join(list((logs or {}).keys()))}")
            warnings.warn(msg, stacklevel=2)
            if self.journal is not None and not self._missing_warned:
                self.journal.append(Entry("warning", epoch=epoch + 1, evidence={"monitor": self.monitor},
                                          message=msg))
            self._missing_warned = True
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        out = early_stop_update(config, self.es_state, epoch, float(current))
        self.es_state = out.state
        self.wait, self.best = out.state.wait, out.state.best
        if out.improved:
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
        if out.stop:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.journal is not None:
                lrs = [_lr(o) for o in _optimizers(self.model)] if getattr(self.model, "optimizer", None) else []
                ev = dict(out.evidence)
                ev["best_epoch"] = None if ev.get("best_epoch") is None else ev["best_epoch"] + 1
                self.journal.append(Entry("early-stop", epoch=epoch + 1, old_lrs=lrs, new_lrs=lrs, evidence=ev))

