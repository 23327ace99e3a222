"""Keras 3 ``ReduceLROnPlateau`` and ``EarlyStopping`` on lrdoctor's plateau core, with a journal.

Both subclass the Keras callbacks they replace (``isinstance`` checks keep working) and take the
same arguments with the same defaults and behaviour — Keras' patience convention (reduce at the
``patience``-th bad epoch), its float32 comparisons, its cool-down order — plus keyword extras:
``journal=`` (a :class:`~lrdoctor.journal.Journal` or a JSONL path), and for the reducer
``schedule=`` (a spec: the optimizer's LR becomes ``schedule(iteration) × plateau factor``, with
no reduction during the warm-up unless ``reduce_in_warmup=True``), ``threshold_mode='rel'``,
``max_reductions``, ``nonfinite``, ``stop_at_min_lr``; and for both ``state_path=`` / ``resume=``
(resuming from a checkpoint, below).

Resume: Keras saves no callback with a model, so both keep their state as a JSON dict
(``state_dict()`` / ``load_state_dict()``) and, with a state file (``state_path=``; by default
next to a journal file), write a snapshot at every epoch end. A ``fit`` that starts past epoch 0
(``initial_epoch=k``, or ``BackupAndRestore``) resumes from the snapshot after epoch k, checked
against the settings and the model's optimizer step; see :mod:`lrdoctor.keras._state`.

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
import numpy as np
from keras.src.utils import io_utils

from lrdoctor.errors import PlateauError
from lrdoctor.journal import Entry, Journal
from lrdoctor.keras._state import Resumable
from lrdoctor.plateau import PlateauConfig, PlateauState, infer_mode, update, warmup_end
from lrdoctor.plateau._schedule import CAUSE_OF_MARK, marks_between
from lrdoctor.schedules import Schedule

__all__ = ["PlateauScaledSchedule", "ReduceLROnPlateau"]


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
    min_delta = cb.min_delta  # Keras' _set_monitor_op flips its sign for 'min'
    try:
        cb._set_monitor_op()  # Keras' own rule: the model's metric directions
    except ValueError:
        raise PlateauError(
            f"mode='auto' cannot tell whether {monitor!r} should go down or up; "
            "pass mode='min' or mode='max'"
        ) from None
    finally:
        cb.min_delta = min_delta
    op = cb.monitor_op
    cb.monitor_op = None
    return "min" if op is keras.ops.less else "max"


def _monitor_op(mode: str | None) -> Any:
    """Keras' ``monitor_op`` for a resolved mode (``ops.less`` for min, ``ops.greater`` for max),
    or None while the mode is still unknown, as Keras has it before the first epoch ends."""
    if mode is None:
        return None
    return keras.ops.less if mode == "min" else keras.ops.greater


def _scalar(monitor: str, value: Any) -> float:
    """The monitored value as a float: a number, a 0-d tensor, or a one-element array such as
    ``keras.metrics.F1Score``'s per-class result of shape ``(1,)``."""
    if isinstance(value, (int, float)):
        return float(value)
    arr = np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)
    if arr.size != 1:
        raise PlateauError(
            f"the monitored metric {monitor!r} holds {arr.size} values (shape {arr.shape}), not one; "
            "monitor a single number, e.g. F1Score(average='macro') instead of average=None"
        )
    return float(arr.reshape(()))


def _optimizers(model: Any) -> list[Any]:
    opt = model.optimizer
    return list(opt.optimizers) if hasattr(opt, "optimizers") else [opt]


def _lr(opt: Any) -> float:
    return float(keras.ops.convert_to_numpy(opt.learning_rate))


class ReduceLROnPlateau(Resumable, keras.callbacks.ReduceLROnPlateau):
    """Drop-in for ``keras.callbacks.ReduceLROnPlateau`` that journals every decision.

    ``state_path``: the state file (None: next to a journal file, e.g. ``journal.jsonl`` →
    ``journal.plateau-val_loss.state.jsonl``; False: none). ``resume``: None resumes when ``fit``
    starts past epoch 0, True insists on a state, False starts afresh.

    Example::

        cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, journal="journal.jsonl")
        model.fit(..., callbacks=[cb])
        print("\n".join(cb.journal.explain()))
    """

    _KIND = "lrdoctor.keras.ReduceLROnPlateau"
    _FILE_KIND = "plateau"

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
        state_path: str | os.PathLike[str] | bool | None = None,
        resume: bool | None = None,
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
        self._config(mode if mode != "auto" else "min")
        self._mode: str | None = None if mode == "auto" else mode
        self.best_epoch: int | None = None
        self.evaluations = 0
        self.num_reductions = 0
        self.exhausted = False
        self._missing_warned = False
        self._init_state(state_path, resume)

    def _config(self, mode: str) -> PlateauConfig:
        return PlateauConfig(
            monitor=self.monitor, mode=mode, factor=self.factor, patience=self.patience,
            threshold=abs(self.min_delta), threshold_mode=self.threshold_mode,
            cooldown=self.cooldown, min_lr=self.min_lr, convention="keras",
            max_reductions=self.max_reductions, nonfinite=self.nonfinite,
            stop_at_min_lr=self.stop_at_min_lr,
        )

    # -- state (see lrdoctor.keras._state) --------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "factor": self.factor,
                "patience": self.patience, "min_delta": self.min_delta, "cooldown": self.cooldown,
                "min_lr": self.min_lr, "threshold_mode": self.threshold_mode,
                "max_reductions": self.max_reductions, "nonfinite": self.nonfinite,
                "stop_at_min_lr": self.stop_at_min_lr, "reduce_in_warmup": self.reduce_in_warmup,
                "schedule": None if self.schedule is None else self.schedule.base.spec}

    def _plateau_state(self) -> PlateauState:
        return PlateauState(
            evaluations=self.evaluations, best=self.best, best_evaluation=self.best_epoch,
            num_bad=self.wait, cooldown_counter=self.cooldown_counter,
            reductions=self.num_reductions, exhausted=self.exhausted,
        )

    def _body(self) -> dict[str, Any]:
        model = self._model  # None before set_model
        lrs = None
        if getattr(model, "optimizer", None) is not None:
            lrs = [_lr(o) for o in _optimizers(model)]
        scale = None
        if self.schedule is not None:
            scale = float(keras.ops.convert_to_numpy(self.schedule.scale))
        return {"plateau": self._plateau_state().to_dict(), "mode": self._mode, "lrs": lrs,
                "scale": scale, "last_eval_step": self._last_eval_step,
                "last_eval_lrs": self._last_eval_lrs, "missing_warned": self._missing_warned}

    def _apply(self, state: dict[str, Any], source: str) -> None:
        st = PlateauState.from_dict(state["plateau"])
        self.evaluations, self.best, self.best_epoch = st.evaluations, st.best, st.best_evaluation
        self.wait, self.cooldown_counter = st.num_bad, st.cooldown_counter
        self.num_reductions, self.exhausted = st.reductions, st.exhausted
        self._mode, self._missing_warned = state["mode"], state["missing_warned"]
        self.monitor_op = _monitor_op(self._mode)
        self._last_eval_step, self._last_eval_lrs = state["last_eval_step"], state["last_eval_lrs"]
        if self.schedule is not None:
            self.schedule.scale.assign(state["scale"])  # the schedule's lr follows
            return
        optimizers, lrs = _optimizers(self.model), state["lrs"]
        if lrs is None:  # taken before any fit: nothing decided yet
            return
        if len(lrs) != len(optimizers):
            raise PlateauError(f"{source} holds {len(lrs)} learning rate(s) but the model has "
                               f"{len(optimizers)} optimizer(s); resume the model that wrote it")
        for opt, lr in zip(optimizers, lrs):  # the reducer's decision, whatever the checkpoint holds
            if _lr(opt) != lr:
                opt.learning_rate = lr

    def _lost(self) -> str:
        factor = " and the plateau factor of schedule=" if self.schedule is not None else ""
        return f"best, wait, the cool-down{factor}"

    # -- the fit ----------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._train_begin()
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
        # the optimizer holds its lr in float32: a smaller difference is rounding, not a move
        if any(abs(a - b) > 1e-6 * max(abs(a), abs(b)) for a, b in zip(before, lrs)):
            self.journal.append(Entry("schedule", epoch=epoch + 1, step=k, old_lrs=before, new_lrs=lrs,
                                      evidence={"schedule": spec, "from_step": self._last_eval_step}))

    def _evaluate(self, epoch: int, logs: dict[str, Any] | None) -> None:
        if self._mode is None:
            self._mode = _resolve_mode(self, self.monitor, self.mode)
        self.monitor_op = _monitor_op(self._mode)
        config = self._config(self._mode)
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
            warnings.warn(msg, stacklevel=3)
            if self.journal is not None and not self._missing_warned:
                self.journal.append(Entry("warning", epoch=epoch + 1, old_lrs=lrs, new_lrs=lrs,
                                          evidence={"monitor": self.monitor}, message=msg))
            self._missing_warned = True
            return
        state = self._plateau_state()
        self._journal_schedule(epoch, lrs)
        k = self._step()
        hold = k is not None and k < self.warmup_steps and not self.reduce_in_warmup
        out = update(config, state, _scalar(self.monitor, current), lrs, hold=hold)
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
                # Keras' own message through Keras' own printer (verbose=1 is the peer's contract)
                io_utils.print_msg(
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
