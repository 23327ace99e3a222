"""``PlateauLR``: a drop-in ``torch.optim.lr_scheduler.ReduceLROnPlateau`` that composes with
schedules, writes a decision journal, early-stops, and agrees across DDP ranks.

It *is* a ``ReduceLROnPlateau`` (a subclass), so ``isinstance`` checks — Lightning's
``monitor`` handling among them — treat it as one. With only the positional arguments it behaves
exactly like torch's class (the one deliberate difference: ``rel`` thresholds compare against
``|best|``, so negative metrics work; ``torch_rel_bug=True`` restores torch's arithmetic; and a
non-finite metric never becomes the best). The decision itself is :func:`lrdoctor.plateau.update`;
this class only moves numbers between it and the optimizer.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, SupportsFloat

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import EPOCH_DEPRECATION_WARNING, ReduceLROnPlateau

from lrdoctor.errors import PlateauError
from lrdoctor.journal import Entry, Journal
from lrdoctor.plateau import (
    EarlyStopConfig,
    EarlyStopState,
    PlateauConfig,
    PlateauState,
    early_stop_update,
    update,
    warmup_end,
)
from lrdoctor.plateau._schedule import CAUSE_OF_MARK, MarkCache
from lrdoctor.schedules import Schedule, parse

__all__ = ["PlateauLR"]

_SYNC_OPS = ("mean", "max", "min", "sum")


def _set_lr(group: dict[str, Any], lr: float) -> None:
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


def _lrs(optimizer: Optimizer) -> list[float]:
    return [float(g["lr"]) for g in optimizer.param_groups]


class PlateauLR(ReduceLROnPlateau):
    """Reduce the learning rate when a metric stops improving — and say why.

    The positional arguments and their defaults are torch's ``ReduceLROnPlateau``'s; so is
    ``step(metric)``. Keyword extras:

    * ``monitor`` — the metric's name, for the journal (and for ``mode='auto'``); ``step``
      also accepts a dict of metrics and picks this one out.
    * ``schedule`` — an lrdoctor schedule or spec (or one per param group): the LR becomes
      ``schedule(k) * plateau_factor`` where ``k`` counts optimizer steps (a post-step hook
      advances it) and the plateau factor starts at 1 and shrinks by ``factor`` at each
      reduction. No reductions during the schedule's warm-up unless ``reduce_in_warmup=True``.
    * ``journal`` — a :class:`~lrdoctor.journal.Journal` or a path for a JSONL journal.
    * ``early_stopping`` — an :class:`~lrdoctor.plateau.EarlyStopConfig` or a dict of its
      settings (monitor defaults to ours); read :attr:`should_stop` after each ``step``.
      ``model`` (and optionally ``best_path``) let ``restore_best=True`` keep and restore the
      best weights, in memory or on disk.
    * ``sync`` — under ``torch.distributed``, how the metric is reduced across ranks before the
      decision: ``"mean"`` (default when a process group is initialised), ``"max"``, ``"min"``,
      ``"sum"`` or ``False``. Only rank 0 writes the journal file.
    * ``convention`` (``"torch"``/``"keras"``), ``max_reductions``, ``nonfinite``
      (``"bad"``/``"reduce"``), ``stop_at_min_lr``, ``torch_rel_bug``: see
      :class:`~lrdoctor.plateau.PlateauConfig`.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: Sequence[float] | float = 0,
        eps: float = 1e-8,
        *,
        monitor: str | None = None,
        schedule: Schedule | str | Sequence[Schedule | str] | None = None,
        journal: Journal | str | os.PathLike[str] | None = None,
        early_stopping: EarlyStopConfig | Mapping[str, Any] | None = None,
        sync: str | bool | None = None,
        convention: str = "torch",
        max_reductions: int | None = None,
        nonfinite: str = "bad",
        stop_at_min_lr: bool = False,
        torch_rel_bug: bool = False,
        reduce_in_warmup: bool = False,
        model: torch.nn.Module | None = None,
        best_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if mode == "auto":
            if monitor is None:
                raise PlateauError("mode='auto' needs monitor=<metric name> to infer the direction")
            mode = PlateauConfig(monitor=monitor, mode="auto").mode
        if isinstance(factor, (int, float)) and factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")  # torch's own message and type
        if mode not in {"min", "max"}:
            raise ValueError("mode " + str(mode) + " is unknown!")
        if threshold_mode not in {"rel", "abs"}:
            raise ValueError("threshold mode " + str(threshold_mode) + " is unknown!")
        super().__init__(optimizer, mode=mode, factor=factor, patience=patience, threshold=threshold,
                         threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps)
        self.monitor = monitor
        self.convention = convention
        self.max_reductions = max_reductions
        self.nonfinite = nonfinite
        self.stop_at_min_lr = stop_at_min_lr
        self.torch_rel_bug = torch_rel_bug
        self.reduce_in_warmup = reduce_in_warmup
        if convention == "keras":
            self.best = None
        self.best_epoch: int | None = None
        self.num_reductions = 0
        self.exhausted = False
        self.plateau_stop = False
        self._config()  # validate every setting now, with lrdoctor's messages
        # -- composition with a schedule ---------------------------------------------------
        self.schedules: list[Schedule] | None = None
        self.scales: list[float] | None = None
        self.opt_steps = 0
        self.warmup_steps = 0
        if schedule is not None:
            self.schedules = _per_group(schedule, len(optimizer.param_groups))
            self.scales = [1.0] * len(optimizer.param_groups)
            self.warmup_steps = max(warmup_end(s) for s in self.schedules)
            self._apply_schedule()
        self._lrs_at_last_eval = _lrs(optimizer)
        self._step_at_last_eval = 0
        # -- journal, early stopping, sync -------------------------------------------------
        if journal is not None and not isinstance(journal, Journal):
            journal = Journal(journal)
        self.journal = journal
        if self.journal is not None and _rank() != 0:
            self.journal.write = False
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopConfig):
            es = dict(early_stopping)
            es.setdefault("monitor", monitor or "metric")
            es.setdefault("mode", mode)
            early_stopping = EarlyStopConfig(**es)
        self.early_stopping = early_stopping
        self.es_state = EarlyStopState() if early_stopping is not None else None
        self.model = model
        self.best_path = os.fspath(best_path) if best_path is not None else None
        self._best_weights: dict[str, torch.Tensor] | None = None
        if sync not in (None, False, True) and sync not in _SYNC_OPS:
            raise PlateauError(f"sync must be one of {', '.join(_SYNC_OPS)}, True or False, got {sync!r}")
        self.sync = "mean" if sync is True else sync
        self._missing_warned = False
        # count optimizer steps always (a journal attached later still gets true steps)
        ref = weakref.ref(self)

        def _after_optimizer_step(opt: Optimizer, args: Any, kwargs: Any) -> None:
            me = ref()
            if me is not None:
                me._on_optimizer_step()

        # the handle is not kept: the hook holds only a weak reference, and torch's own
        # state-dict tests compare every attribute of the scheduler
        optimizer.register_step_post_hook(_after_optimizer_step)

    def attach_journal(self, journal: Journal) -> None:
        """Record this scheduler's decisions in ``journal`` from now on (rank 0 writes)."""
        self.journal = journal
        if _rank() != 0:
            journal.write = False

    # -- settings --------------------------------------------------------------------------
    def _config(self) -> PlateauConfig:
        if len(self.optimizer.param_groups) != len(self.min_lrs) and self.default_min_lr is not None:
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        return PlateauConfig(
            monitor=self.monitor or "metric", mode=self.mode, factor=self.factor,
            patience=self.patience, threshold=self.threshold, threshold_mode=self.threshold_mode,
            cooldown=self.cooldown, min_lr=tuple(float(m) for m in self.min_lrs), eps=self.eps,
            convention=self.convention, max_reductions=self.max_reductions,
            nonfinite=self.nonfinite, stop_at_min_lr=self.stop_at_min_lr,
            torch_rel_bug=self.torch_rel_bug,
        )

    # -- the schedule ------------------------------------------------------------------------
    def _schedule_lrs(self, k: int) -> list[float]:
        assert self.schedules is not None and self.scales is not None
        return [s(k) * c for s, c in zip(self.schedules, self.scales)]

    def _apply_schedule(self) -> None:
        for g, lr in zip(self.optimizer.param_groups, self._schedule_lrs(self.opt_steps)):
            _set_lr(g, lr)
        self._last_lr = _lrs(self.optimizer)

    def _on_optimizer_step(self) -> None:
        before = _lrs(self.optimizer)
        self.opt_steps += 1
        k = self.opt_steps
        if self.schedules is None:
            return
        self._apply_schedule()
        if self.journal is None:
            return
        cache = self.__dict__.get("_marks")
        if cache is None or cache.schedule is not self.schedules[0]:
            cache = MarkCache(self.schedules[0])
            object.__setattr__(self, "_marks", cache)
        label = cache.label_at(k)
        cause = CAUSE_OF_MARK.get(label) if label is not None else None
        if cause is None:
            return  # step decays and smooth decays are summarised at the next evaluation
        ev = {"label": label, "schedule": self.schedules[0].to_spec()}
        self.journal.append(Entry(cause, epoch=self.last_epoch, step=k, old_lrs=before,
                                  new_lrs=self._last_lr, evidence=ev))
        # the move is explained by this entry; the next evaluation reports what follows it
        self._lrs_at_last_eval, self._step_at_last_eval = list(self._last_lr), k

    @property
    def in_warmup(self) -> bool:
        """Whether the schedule's warm-up is still running (no reductions then by default)."""
        return self.opt_steps < self.warmup_steps and not self.reduce_in_warmup

    # -- the decision ----------------------------------------------------------------------
    def step(self, metrics: SupportsFloat | Mapping[str, Any], epoch: int | None = None) -> None:  # type: ignore[override]
        """Feed one evaluation of the monitored metric (a number, a 0-dim tensor, or a dict of
        metrics holding ``monitor``) and reduce the LR if it has plateaued."""
        value = self._read_metric(metrics)
        if value is None:
            return
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
            evaluations_before = int(epoch) - 1
        else:
            evaluations_before = self.last_epoch
        value = self._synced(value)
        self._journal_schedule_moves()
        config = self._config()
        if self.schedules is not None:
            lrs = self._schedule_lrs(self.opt_steps)
        else:
            lrs = _lrs(self.optimizer)
        state = PlateauState(
            evaluations=evaluations_before, best=self.best, best_evaluation=self.best_epoch,
            num_bad=self.num_bad_epochs, cooldown_counter=self.cooldown_counter,
            reductions=self.num_reductions, exhausted=self.exhausted, stopped=self.plateau_stop,
        )
        try:
            out = update(config, state, value, lrs, hold=self.in_warmup)
        except PlateauError as err:
            if len(self.min_lrs) == len(lrs):
                raise
            # torch's own error at a reduction: a param group was added after construction
            raise RuntimeError(
                f"the optimizer has {len(lrs)} param groups but min_lr was given for "
                f"{len(self.min_lrs)} when PlateauLR was built (a param group added since?); "
                "set scheduler.min_lrs to one value per group"
            ) from err
        st = out.state
        self.last_epoch = st.evaluations
        self.best, self.best_epoch = st.best, st.best_evaluation
        self.num_bad_epochs, self.cooldown_counter = st.num_bad, st.cooldown_counter
        self.num_reductions, self.exhausted, self.plateau_stop = st.reductions, st.exhausted, st.stopped
        if out.reduced:
            if self.schedules is not None:
                assert self.scales is not None
                for i, (old, new, changed) in enumerate(zip(lrs, out.lrs, out.changed)):
                    if changed and old > 0:
                        self.scales[i] *= new / old
                self._apply_schedule()
            else:
                for g, new, changed in zip(self.optimizer.param_groups, out.lrs, out.changed):
                    if changed:
                        _set_lr(g, new)
        self._last_lr = [g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
                         for g in self.optimizer.param_groups]
        self._journal_decision(out, lrs)
        self._early_stop(value)
        self._lrs_at_last_eval, self._step_at_last_eval = _lrs(self.optimizer), self.opt_steps

    def _read_metric(self, metrics: Any) -> float | None:
        if isinstance(metrics, Mapping):
            if self.monitor is None:
                raise PlateauError("step() got a dict of metrics but PlateauLR has no monitor=<name>")
            if self.monitor not in metrics:
                msg = (f"the monitored metric {self.monitor!r} is not among the metrics given to "
                       f"step() ({', '.join(map(str, metrics)) or 'none'}); nothing was decided")
                warnings.warn(msg, UserWarning, stacklevel=3)
                if self.journal is not None and not self._missing_warned:
                    self.journal.append(Entry("warning", epoch=self.last_epoch, step=self._step(),
                                              old_lrs=_lrs(self.optimizer), new_lrs=_lrs(self.optimizer),
                                              evidence={"monitor": self.monitor}, message=msg))
                self._missing_warned = True
                return None
            metrics = metrics[self.monitor]
        if metrics is None:
            raise PlateauError("step() needs the metric's value, got None")
        return float(metrics)

    def _synced(self, value: float) -> float:
        op = self.sync
        if op is None:
            op = "mean" if _world_size() > 1 else False
        if not op or _world_size() <= 1:
            return value
        import torch.distributed as dist

        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        t = torch.tensor([value], dtype=torch.float64, device=device)
        red = {"mean": dist.ReduceOp.SUM, "sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX,
               "min": dist.ReduceOp.MIN}[op]
        dist.all_reduce(t, op=red)
        out = float(t.item())
        return out / dist.get_world_size() if op == "mean" else out

    def _step(self) -> int | None:
        return self.opt_steps

    def _journal_schedule_moves(self) -> None:
        if self.journal is None or self.schedules is None:
            return
        now = _lrs(self.optimizer)
        before = self._lrs_at_last_eval
        if any(not math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0) for a, b in zip(before, now)):
            ev = {"schedule": self.schedules[0].to_spec(), "from_step": self._step_at_last_eval}
            self.journal.append(Entry("schedule", epoch=self.last_epoch + 1, step=self.opt_steps,
                                      old_lrs=before, new_lrs=now, evidence=ev))

    def _journal_decision(self, out: Any, lrs: Sequence[float]) -> None:
        if self.journal is None:
            return
        ev = dict(out.evidence)
        ev["min_lr"] = [float(m) for m in self.min_lrs]
        common = {"epoch": self.last_epoch, "step": self._step(), "evidence": ev}
        if out.reduced:
            self.journal.append(Entry(out.cause or "plateau", old_lrs=lrs,
                                      new_lrs=_lrs(self.optimizer), **common))
        elif out.nonfinite:
            self.journal.append(Entry("nonfinite", old_lrs=lrs, new_lrs=lrs, **common))
        if out.stop:
            ev2 = {**ev, "reason": "min_lr"}
            self.journal.append(Entry("early-stop", epoch=self.last_epoch, step=self._step(),
                                      old_lrs=lrs, new_lrs=lrs, evidence=ev2))

    # -- early stopping ----------------------------------------------------------------------
    def _early_stop(self, value: float) -> None:
        if self.early_stopping is None or self.es_state is None:
            return
        cfg = self.early_stopping
        if cfg.restore_best and self.model is not None and self._best_weights is None \
                and self.last_epoch - 1 >= cfg.start_from_epoch and not self._has_best_on_disk():
            self._save_best()
        out = early_stop_update(cfg, self.es_state, self.last_epoch - 1, value)
        self.es_state = out.state
        if out.improved and cfg.restore_best and self.model is not None:
            self._save_best()
        if out.stop and self.journal is not None:
            ev = dict(out.evidence)
            ev["best_epoch"] = None if ev.get("best_epoch") is None else ev["best_epoch"] + 1
            lrs = _lrs(self.optimizer)
            self.journal.append(Entry("early-stop", epoch=self.last_epoch, step=self._step(),
                                      old_lrs=lrs, new_lrs=lrs, evidence=ev))

    def journal_lines(self) -> list[str]:
        """The journal's sentences (empty without a journal), e.g. for a report."""
        return self.journal.explain() if self.journal is not None else []

    @property
    def should_stop(self) -> bool:
        """True once early stopping (or ``stop_at_min_lr``) asks training to end."""
        return bool(self.plateau_stop or (self.es_state is not None and self.es_state.stopped))

    def _has_best_on_disk(self) -> bool:
        return self.best_path is not None and os.path.exists(self.best_path) and self.es_state is not None \
            and self.es_state.best is not None

    def _save_best(self) -> None:
        assert self.model is not None
        weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        if self.best_path is not None:
            tmp = self.best_path + ".tmp"
            torch.save(weights, tmp)
            os.replace(tmp, self.best_path)
        else:
            self._best_weights = weights

    def restore_best(self) -> bool:
        """Load the best weights seen into ``model``; False if none were kept."""
        if self.model is None:
            raise PlateauError("restore_best() needs PlateauLR(..., model=<your model>)")
        weights = self._best_weights
        if weights is None and self.best_path is not None and os.path.exists(self.best_path):
            weights = torch.load(self.best_path, weights_only=True)
        if weights is None:
            return False
        self.model.load_state_dict(weights)
        return True

    # -- state -----------------------------------------------------------------------------
    _NOT_STATE: ClassVar[set[str]] = {"optimizer", "journal", "_hook", "model", "schedules", "early_stopping",
                  "es_state", "_best_weights", "_marks"}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed for an exact resume: torch's fields, the plateau extras, the
        schedule specs and factors, the optimizer-step count, the early-stopping state and the
        journal (its entries). Only plain Python values and tensors, so
        ``torch.load(weights_only=True)`` reads it."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._NOT_STATE}
        state["schedule_specs"] = None if self.schedules is None else [s.to_spec() for s in self.schedules]
        state["early_stopping"] = None if self.early_stopping is None else self.early_stopping.to_dict()
        state["es_state"] = None if self.es_state is None else self.es_state.to_dict()
        state["journal_entries"] = None if self.journal is None else self.journal.state()
        state["journal_position"] = None if self.journal is None else len(self.journal)
        state["best_weights"] = self._best_weights
        return copy.deepcopy(state)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume exactly where :meth:`state_dict` was taken (also reads a plain
        ``ReduceLROnPlateau`` state dict). A journal file is rewritten to hold exactly the
        entries of the checkpoint."""
        state = dict(state_dict)
        specs = state.pop("schedule_specs", None)
        es = state.pop("early_stopping", None)
        es_state = state.pop("es_state", None)
        entries = state.pop("journal_entries", None)
        state.pop("journal_position", None)  # len(entries); kept for readers of the checkpoint
        best_weights = state.pop("best_weights", None)
        self.__dict__.update(state)
        self._init_is_better(mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode)
        if specs is not None:
            self.schedules = [parse(s) for s in specs]
        if es is not None:
            self.early_stopping = EarlyStopConfig.from_dict(es)
        if es_state is not None:
            self.es_state = EarlyStopState.from_dict(es_state)
        if best_weights is not None:
            self._best_weights = best_weights
        if entries is not None and self.journal is not None:
            self.journal.restore(entries)
        if self.schedules is not None and self.scales is not None:
            self._apply_schedule()

    def __repr__(self) -> str:
        extra = f", schedule={self.schedules[0].to_spec()}" if self.schedules else ""
        return (f"PlateauLR(mode={self.mode}, factor={self.factor}, patience={self.patience}, "
                f"best={self.best}, bad={self.num_bad_epochs}{extra})")


def _per_group(schedule: Any, n: int) -> list[Schedule]:
    if isinstance(schedule, (str, Schedule)):
        one = parse(schedule)
        return [one] * n
    items = list(schedule)
    if len(items) != n:
        raise PlateauError(f"got {len(items)} schedules for {n} param groups; give one, or one per group")
    return [parse(s) for s in items]


def _world_size() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _rank() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))
