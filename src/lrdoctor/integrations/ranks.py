"""Training on many processes: one Monitor log for all ranks, and a check that ranks agree.

``RankMonitor`` wraps :class:`lrdoctor.torch.Monitor` for ``torchrun``: every rank calls
``step(loss=...)``; the loss is averaged over ranks (one ``all_reduce`` of one number), so every
rank sees the same value — a NaN on any rank is a NaN everywhere, and every rank reacts the same
way — and rank 0 alone writes the log. Gradients are already averaged by DDP, so rank 0's
gradient statistics are the global ones. ``trace_dir=`` additionally writes each rank's *local*
loss and learning rates to ``<trace_dir>/rank<r>.jsonl`` for :func:`diagnose_ranks`.

:func:`diagnose_ranks` (pure: numpy and the log model) compares those per-rank logs and returns
``ranks-diverge`` findings — an extension of DESIGN.md's codes, since none of them says "the
processes disagree":

* **learning rates differ** between ranks at the same step (critical): a scheduler stepped on
  one rank only, or a plateau decision taken on a local metric;
* **a non-finite loss on some ranks only** (critical): that rank's data or state is broken;
* **local losses drift apart**: over the last ``window`` steps, the spread of the per-rank
  median losses exceeds ``loss_tolerance`` (default 25%) of their median (warning): shards that
  are not shuffled alike, or replicas whose weights are no longer in sync.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from typing_extensions import Self

from lrdoctor.integrations._run import truncate_after

__all__ = ["CODE", "RankMonitor", "all_reduce_mean", "diagnose_ranks",
           "rank_and_world"]

#: The finding code (an extension of DESIGN.md's list).
CODE = "ranks-diverge"


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, else ``(0, 1)``."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is there whenever ranks exist
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_mean(value: float) -> float:
    """The mean of ``value`` over all ranks (``value`` itself without a process group)."""
    _, world = rank_and_world()
    if world == 1:
        return float(value)
    import torch
    import torch.distributed as dist

    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / world


def _as_float(loss: Any) -> float:
    if hasattr(loss, "detach"):
        return float(loss.detach().float().item())
    return float(loss)


class RankMonitor:
    """A :class:`lrdoctor.torch.Monitor` that is correct under ``torch.distributed``.

    ``step(loss=...)`` on every rank after every optimizer step; the mean loss over ranks goes to
    the Monitor on rank 0 (``write="all"`` gives every other rank its own Monitor at
    ``<path stem>.rank<r>.jsonl``, to check that they agree). Without a process group it is a
    plain Monitor. ``start_step``/``start_epoch`` continue a resumed run's numbering. Other
    keyword arguments go to ``Monitor``. With ``write="all"`` on several ranks the Monitors
    default to ``budget=None`` (the fixed cadence): each rank measures its own step time, so a
    time budget would sample different steps on each and the copies could not be compared.
    """

    def __init__(self, model: Any, optimizer: Any, path: str | os.PathLike[str], *,
                 write: str = "rank0", trace_dir: str | os.PathLike[str] | None = None,
                 start_step: int = 0, start_epoch: int = 0, **monitor_kwargs: Any) -> None:
        if write not in ("rank0", "all"):
            raise ValueError(f"write must be 'rank0' or 'all', got {write!r}")
        self.rank, self.world_size = rank_and_world()
        self.optimizer = optimizer
        self.path = Path(path)
        if write == "all" and self.rank > 0:  # this rank's own copy: fresh, or cut at the resume
            self.path = self.path.with_name(f"{self.path.stem}.rank{self.rank}{self.path.suffix}")
            if start_step == 0:
                self.path.unlink(missing_ok=True)
            else:
                truncate_after(self.path, start_step)
        if write == "all" and self.world_size > 1:
            monitor_kwargs.setdefault("budget", None)
        self.monitor = None
        if self.rank == 0 or write == "all":
            from lrdoctor.torch import Monitor

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.monitor = Monitor(model, optimizer, self.path, **monitor_kwargs)
            self.monitor.global_step, self.monitor.epoch_count = start_step, start_epoch
        self._trace = None
        if trace_dir is not None:
            tdir = Path(trace_dir)
            tdir.mkdir(parents=True, exist_ok=True)
            trace = tdir / f"rank{self.rank}.jsonl"     # each rank owns its file
            if start_step == 0:
                trace.unlink(missing_ok=True)
            else:
                truncate_after(trace, start_step)
            # plain {"step", "values"} records, no meta line: not a Monitor log that
            # lrdoctor.logs.load(run_dir) would take for the run's log
            self._trace = open(trace, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.steps = start_step
        self.last_loss: float | None = None

    @property
    def writes(self) -> bool:
        """Whether this rank writes a Monitor log."""
        return self.monitor is not None

    def step(self, loss: Any = None, *, mean: float | None = None,
             lrs: list[float] | None = None, **kwargs: Any) -> float | None:
        """Record one optimizer step; returns the loss averaged over ranks (None without one).

        ``mean``: the loss already averaged over ranks (e.g. to skip a NaN step on every rank
        before ``optimizer.step()``), which saves a second ``all_reduce``. ``lrs`` are the
        learning rates the step used, one per param group, when the scheduler has already moved
        the optimizer's (Lightning steps it before ``on_train_batch_end``)."""
        if lrs is not None:
            kwargs.update(self._lr_names(lrs))
        if loss is not None:
            local = _as_float(loss)
            if mean is None:
                mean = all_reduce_mean(local)
            if self._trace is not None:
                values: dict[str, Any] = {"train/loss": _json_number(local)}
                used = lrs if lrs is not None else [g["lr"] for g in self.optimizer.param_groups]
                for i, lr in enumerate(used):
                    values[f"lr/{i}"] = float(lr)
                self._trace.write(json.dumps({"step": self.steps, "values": values}) + "\n")
        self.steps += 1
        self.last_loss = mean
        if self.monitor is not None:
            self.monitor.step(loss=mean, **kwargs)
        return mean

    def _lr_names(self, lrs: list[float]) -> dict[str, float]:
        groups = self.optimizer.param_groups
        if len(groups) == 1:
            return {"lr": float(lrs[0])}
        return {f"lr/{g.get('name', i)}": float(lr) for i, (g, lr) in enumerate(zip(groups, lrs))}

    def epoch(self, **metrics: Any) -> None:
        """Epoch metrics (already averaged over ranks by the caller, as Lightning's
        ``sync_dist=True`` does); rank 0 writes them."""
        if self.monitor is not None:
            self.monitor.epoch(**metrics)

    def watch(self, scheduler: Any, *, metric: str | None = None) -> None:
        """Log an LR scheduler's settings and decisions (:meth:`lrdoctor.torch.Monitor.watch`;
        rank 0 writes)."""
        if self.monitor is not None:
            self.monitor.watch(scheduler, metric=metric)

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
        if self._trace is not None:
            self._trace.close()
            self._trace = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_number(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


# -- the ranks-diverge rule --------------------------------------------------------------------
def _finding(title: str, severity: str, evidence: str, fix: str, steps: tuple[int, ...],
             data: dict[str, Any]) -> Any:
    from lrdoctor.doctor import Finding

    return Finding(CODE, title, severity, evidence, fix, steps=steps, score=1.0, data=data)


def diagnose_ranks(logs: Mapping[int, Any] | str | os.PathLike[str], *, lr_rtol: float = 1e-6,
                   loss_tolerance: float = 0.25, window: int = 50) -> list[Any]:
    """``ranks-diverge`` findings (:class:`lrdoctor.doctor.Finding`) from per-rank logs: a
    directory of ``rank<r>.jsonl`` files (what ``RankMonitor(trace_dir=...)`` writes) or
    ``{rank: TrainingLog}``. No finding means the ranks agree."""
    if not isinstance(logs, Mapping):
        from lrdoctor.logs import load

        files = sorted(Path(logs).glob("rank*.jsonl"))
        logs = {int(f.stem[4:]): load(f) for f in files if f.stem[4:].isdigit()}
    if len(logs) < 2:
        return []
    ranks = sorted(logs)
    findings: list[Any] = []
    lr_names = sorted(set.intersection(*(set(logs[r].names("lr")) for r in ranks)))
    for name in lr_names:
        f = _lr_disagreement(name, {r: logs[r].get(name) for r in ranks}, lr_rtol)
        if f is not None:
            findings.append(f)
            break  # one LR finding says it; the others repeat it
    if all(logs[r].has("train/loss") for r in ranks):
        losses = {r: logs[r].get("train/loss") for r in ranks}
        findings += _nonfinite_on_some(losses)
        f = _loss_spread(losses, loss_tolerance, window)
        if f is not None:
            findings.append(f)
    return findings


def _common(series: Mapping[int, Any]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    steps = None
    for s in series.values():
        steps = s.steps if steps is None else np.intersect1d(steps, s.steps)
    assert steps is not None
    out = {r: s.values[np.searchsorted(s.steps, steps)] for r, s in series.items()}
    return steps, out


def _lr_disagreement(name: str, series: Mapping[int, Any], rtol: float) -> Any:
    steps, values = _common(series)
    if len(steps) == 0:
        return None
    stack = np.vstack([values[r] for r in sorted(values)])
    ref = np.abs(stack).max(axis=0)
    spread = stack.max(axis=0) - stack.min(axis=0)
    bad = np.flatnonzero(spread > rtol * np.maximum(ref, 1e-30))
    if len(bad) == 0:
        return None
    i = int(bad[0])
    step = int(steps[i])
    per_rank = {str(r): float(values[r][i]) for r in sorted(values)}
    shown = ", ".join(f"rank {r}: {v:.4g}" for r, v in per_rank.items())
    return _finding(
        "Ranks train with different learning rates", "critical",
        f"{name} differs between ranks from step {step} on ({shown}); "
        f"{len(bad)} of {len(steps)} steps disagree",
        "step every scheduler on every rank, and reduce plateau metrics across ranks before "
        "deciding (PlateauLR(sync='mean'), the default under torch.distributed)",
        (step,), {"series": name, "first_step": step, "lr_by_rank": per_rank,
                  "steps_disagreeing": len(bad), "steps_compared": len(steps)})


def _nonfinite_on_some(series: Mapping[int, Any]) -> list[Any]:
    steps, values = _common(series)
    finite = np.vstack([np.isfinite(values[r]) for r in sorted(values)])
    mixed = np.flatnonzero(finite.any(axis=0) & ~finite.all(axis=0))
    if len(mixed) == 0:
        return []
    i = int(mixed[0])
    ranks = [r for r in sorted(values) if not math.isfinite(values[r][i])]
    step = int(steps[i])
    return [_finding(
        "A non-finite loss on some ranks only", "critical",
        f"the local loss of rank(s) {', '.join(map(str, ranks))} is NaN/Inf at step {step} while "
        f"the other ranks' is finite ({len(mixed)} such steps)",
        f"inspect the batches of rank {ranks[0]} around step {step} (a corrupt sample or a "
        "shard-specific bug); average the loss over ranks before testing it for NaN so every "
        "rank skips or stops together",
        (step,), {"first_step": step, "ranks": ranks, "steps_affected": len(mixed)})]


def _loss_spread(series: Mapping[int, Any], tolerance: float, window: int) -> Any:
    steps, values = _common(series)
    if len(steps) < 2:
        return None
    tail = slice(max(0, len(steps) - window), len(steps))
    medians = {}
    for r in sorted(values):
        v = values[r][tail]
        v = v[np.isfinite(v)]
        if len(v) == 0:
            return None
        medians[r] = float(np.median(v))
    center = float(np.median(list(medians.values())))
    spread = max(medians.values()) - min(medians.values())
    if center == 0 or spread <= tolerance * abs(center):
        return None
    first, last = int(steps[tail][0]), int(steps[-1])
    shown = ", ".join(f"rank {r}: {m:.4g}" for r, m in medians.items())
    return _finding(
        "Ranks see very different losses", "warning",
        f"over steps {first}-{last} the median local losses ({shown}) spread by "
        f"{spread / abs(center):.0%} of their median (tolerance {tolerance:.0%})",
        "give every rank a shuffled shard of the same data (DistributedSampler with set_epoch "
        "each epoch) and wrap the model in DistributedDataParallel so replicas stay in sync",
        (first, last), {"median_loss_by_rank": {str(r): m for r, m in medians.items()},
                        "relative_spread": spread / abs(center), "tolerance": tolerance})
