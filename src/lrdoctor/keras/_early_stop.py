"""Keras 3 ``EarlyStopping`` on lrdoctor's early-stopping core, with a journal and a resumable
state (the module docstring of :mod:`lrdoctor.keras._callbacks` says what differs from Keras)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from lrdoctor.errors import PlateauError
from lrdoctor.journal import Entry, Journal
from lrdoctor.keras._callbacks import (
    _check_mode,
    _journal,
    _lr,
    _monitor_op,
    _optimizers,
    _resolve_mode,
    _scalar,
)
from lrdoctor.keras._state import Resumable
from lrdoctor.plateau import EarlyStopConfig, EarlyStopState, early_stop_update

__all__ = ["EarlyStopping"]


class EarlyStopping(Resumable, keras.callbacks.EarlyStopping):
    """Drop-in for ``keras.callbacks.EarlyStopping`` that journals the stop and its evidence.

    ``state_path`` / ``resume`` as for :class:`~lrdoctor.keras.ReduceLROnPlateau` (the default
    file next to ``journal.jsonl`` is ``journal.early-stop-val_loss.state.jsonl``). With
    ``restore_best_weights=True`` and a state file, the best weights are also kept next to it
    (``<state file>.best.npz``, rewritten at each improvement), so a resumed fit ends on them.
    """

    _KIND = "lrdoctor.keras.EarlyStopping"
    _FILE_KIND = "early-stop"

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
        state_path: str | os.PathLike[str] | bool | None = None,
        resume: bool | None = None,
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
        self._init_state(state_path, resume)
        self._previous_weights: list[Any] | None = None

    def _config(self, mode: str) -> EarlyStopConfig:
        return EarlyStopConfig(
            monitor=self.monitor, mode=mode, min_delta=abs(self.min_delta), patience=self.patience,
            baseline=self.baseline, start_from_epoch=self.start_from_epoch,
            restore_best=self.restore_best_weights, min_delta_mode=self.min_delta_mode,
        )

    # -- state (see lrdoctor.keras._state) --------------------------------------------------
    @property
    def best_weights_path(self) -> Path | None:
        """Where the best weights are kept for a resume (with a state file and
        ``restore_best_weights=True``), else None."""
        if self.state_path is None or not self.restore_best_weights:
            return None
        return self.state_path.with_name(self.state_path.name + ".best.npz")

    def _settings(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "min_delta": self.min_delta,
                "patience": self.patience, "baseline": self.baseline,
                "restore_best_weights": self.restore_best_weights,
                "start_from_epoch": self.start_from_epoch, "min_delta_mode": self.min_delta_mode}

    def _body(self) -> dict[str, Any]:
        best_epoch = getattr(self, "best_epoch", 0)  # Keras sets it in on_train_begin
        kept = best_epoch if self.best_weights is not None else None
        return {"early_stop": self.es_state.to_dict(), "mode": self._mode,
                "missing_warned": self._missing_warned, "best_epoch": best_epoch,
                "stopped_epoch": self.stopped_epoch, "best_weights_epoch": kept}

    def _apply(self, state: dict[str, Any], source: str) -> None:
        self.es_state = EarlyStopState.from_dict(state["early_stop"])
        self.wait, self.best = self.es_state.wait, self.es_state.best
        self.best_epoch, self.stopped_epoch = state["best_epoch"], state["stopped_epoch"]
        self._mode, self._missing_warned = state["mode"], state["missing_warned"]
        self.monitor_op = _monitor_op(self._mode)
        kept = state["best_weights_epoch"]
        if kept is None or not self.restore_best_weights:
            return
        if source == "this callback's last fit" and self._previous_weights is not None:
            self.best_weights = self._previous_weights
            return
        self.best_weights = self._load_best_weights(kept, source)

    def _load_best_weights(self, epoch: int, source: str) -> list[Any]:
        path = self.best_weights_path
        if path is None or not path.exists():
            where = f"{path} does not exist" if path is not None else "there is no state file"
            raise PlateauError(
                f"restore_best_weights=True, and {source} needs the best weights of epoch "
                f"{epoch + 1}, but {where}; resume through state_path= (the weights are kept next "
                "to it), or pass restore_best_weights=False")
        with np.load(path) as data:
            held = int(data["epoch"])
            weights = [data[f"w{i}"] for i in range(int(data["count"]))]
        if held != epoch:
            raise PlateauError(
                f"{path} holds the weights of epoch {held + 1}, but {source} needs those of epoch "
                f"{epoch + 1} (a later improvement replaced them); resume from the latest "
                "checkpoint, or pass restore_best_weights=False")
        return weights

    def _save_best_weights(self) -> None:
        path = self.best_weights_path
        if path is None or self.best_weights is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(self.best_weights)}
        with open(tmp, "wb") as fh:
            np.savez(fh, epoch=np.int64(self.best_epoch), count=np.int64(len(arrays)), **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _lost(self) -> str:
        return "best, wait" + (" and the best weights" if self.restore_best_weights else "")

    # -- the fit ----------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._train_begin()
        self._previous_weights = self.best_weights
        super().on_train_begin(logs)
        self.es_state = EarlyStopState()

    def _evaluate(self, epoch: int, logs: dict[str, Any] | None) -> None:
        if self._mode is None:
            self._mode = _resolve_mode(self, self.monitor, self.mode)
        self.monitor_op = _monitor_op(self._mode)
        config = self._config(self._mode)
        current = (logs or {}).get(self.monitor)
        if current is None:
            msg = (f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                   f"Available metrics are: {','.join(list((logs or {}).keys()))}")
            warnings.warn(msg, stacklevel=3)
            if self.journal is not None and not self._missing_warned:
                self.journal.append(Entry("warning", epoch=epoch + 1,
                                          evidence={"monitor": self.monitor}, message=msg))
            self._missing_warned = True
            return
        if epoch < self.start_from_epoch:
            return
        first = self.restore_best_weights and self.best_weights is None
        if first:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        out = early_stop_update(config, self.es_state, epoch, _scalar(self.monitor, current))
        self.es_state = out.state
        self.wait, self.best = out.state.wait, out.state.best
        if out.improved:
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
        if first or (out.improved and self.restore_best_weights):
            self._save_best_weights()  # kept for a resume, with a state file
        if out.stop:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.journal is not None:
                has_optimizer = getattr(self.model, "optimizer", None) is not None
                lrs = [_lr(o) for o in _optimizers(self.model)] if has_optimizer else []
                ev = dict(out.evidence)
                ev["best_epoch"] = None if ev.get("best_epoch") is None else ev["best_epoch"] + 1
                self.journal.append(Entry("early-stop", epoch=epoch + 1, old_lrs=lrs, new_lrs=lrs,
                                          evidence=ev))
