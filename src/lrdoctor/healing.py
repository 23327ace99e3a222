"""The verified repair loop: diagnose a run, apply the best untried fix, retrain, check.

``lrdoctor.repair`` is this module's :func:`repair`, re-exported at the top (the module has its
own name so that ``import lrdoctor.healing`` and the function never shadow each other).

``repair(train_fn, config, *, rounds=3)`` trains ``config`` once, then for up to ``rounds``
rounds takes the first change not tried yet from the problems' ``changes`` (the findings in the
doctor's order, each finding's alternatives best first, :mod:`lrdoctor.doctor._changes`),
retrains with it and diagnoses again. Once a run has no finding of severity warning or
critical (``healed``) it *improves* while rounds are left (``improve=True``, the default): a run
the doctor calls healthy can still be short of what the task allows (a crawl that no longer
reads as one, a curve still rising at the end). The improving rounds try, in order: when the key
metric was still improving at the end (its gain over the last third of the evaluations is above
the run's noise), ``lr`` x3; when the training loss is the floor (its final value within 10% of
the validation loss: the model fits its training data no better than unseen data) and the config
has an int ``width``, a wider model (``width`` ``'x<k>'``, k as for underfitting in
:mod:`lrdoctor.doctor._changes`); when still improving, ``epochs`` x2; the changes of the run's ``info`` findings
(``still-learning``, ``plateau``, ``batch-size``, ...); the untried alternatives of the finding
whose change healed the run. An improving change is kept only when its run is healthy too and
its key metric is better by more than the noise of either run: the standard deviation of the
key metric's last (up to) 5 values around their straight-line fit. It stops when the rounds or
these changes run out.

The rule for what later rounds build on: a change is kept when its run is healthy, when its key
metric is better than the run it changed (non-finite counts as worst; on a tie, fewer problems
wins), or when it cured a problem (the finding it was made for was present, a finding is gone,
no new problem appeared, and the metric is no worse: a right fix whose effect another fault
still hides); otherwise the loop goes back to the
better config and tries the next alternative. A change is skipped without spending a
round when its knob is not a key of the config, when it leaves the config as it is, or when
``train_fn`` raises :class:`~lrdoctor.errors.UnsupportedChange`.

:func:`random_repair` is the baseline the benchmark compares with: the same loop, the same
budget and the same keep rule, but each change is one knob of the vocabulary set to a value
drawn at random (:data:`lrdoctor.doctor._changes.KNOBS` ``choices``).

Every round can go to a :class:`~lrdoctor.journal.Journal` (cause ``repair``), which
``lrdoctor explain`` reads; progress goes to the ``lrdoctor.healing`` logger and to an optional
``progress(round, rounds, message)`` callback. Pure: the example tasks' ``train_fn``
(:func:`repair_example`) imports torch when it trains.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrdoctor.doctor import Diagnosis, diagnose
from lrdoctor.doctor._changes import KNOBS, width_factor
from lrdoctor.errors import LRDoctorError, UnsupportedChange
from lrdoctor.journal import Entry, Journal
from lrdoctor.logs import TrainingLog, load

__all__ = ["Attempt", "RepairResult", "Round", "UnsupportedChange", "apply_change",
           "random_repair", "repair", "repair_example"]

logger = logging.getLogger("lrdoctor.healing")

TrainFn = Callable[[dict[str, Any]], Any]
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Attempt:
    """A change that was not trained: which finding proposed it and why it was skipped."""

    code: str
    change: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class Round:
    """One training run of the loop. Round 0 is the config as given.

    ``improve``: an improving round (after the run was healthy); ``code``/``change``: the finding whose change this run applied (None in round 0);
    ``metric``: the key metric's last finite value (None when the log lacks it); ``healthy``:
    the diagnosis has no warning or critical finding; ``kept``: later rounds build on this
    config; ``skipped``: changes passed over before this one.
    """

    index: int
    config: dict[str, Any]
    diagnosis: Diagnosis
    log: TrainingLog
    metric: float | None
    healthy: bool
    code: str | None = None
    change: dict[str, Any] | None = None
    kept: bool = True
    skipped: tuple[Attempt, ...] = ()
    source: str | None = None
    improve: bool = False

    def sentence(self) -> str:
        """One line: what was changed, what the doctor says now, the metric."""
        what = ("the run as given" if self.change is None else
                f"{_fmt_change(self.change)} (for {self.code})")
        if self.improve:
            what += " [improving]"
        verdict = "healthy" if self.healthy else "; ".join(
            f.code for f in self.diagnosis.problems[:3])
        metric = "" if self.metric is None else f", metric {self.metric:.4g}"
        kept = "" if self.kept or self.index == 0 else ", reverted"
        return f"{what}: {verdict}{metric}{kept}"

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.index, "code": self.code, "change": self.change,
                "config": _jsonable(self.config), "metric": self.metric,
                "healthy": self.healthy, "kept": self.kept, "source": self.source,
                "improve": self.improve, "findings": [f.to_dict() for f in self.diagnosis.problems],
                "skipped": [{"code": a.code, "change": a.change, "reason": a.reason}
                            for a in self.skipped]}


@dataclass(frozen=True)
class RepairResult:
    """What :func:`repair` did: ``healed``, the final ``config`` (the healthy one, else the best
    run's) and ``history`` (one :class:`Round` per training run, round 0 first)."""

    healed: bool
    config: dict[str, Any]
    history: tuple[Round, ...]
    metric: str | None = None
    strategy: str = "doctor"
    skipped: tuple[Attempt, ...] = field(default=(), compare=False)

    @property
    def rounds(self) -> int:
        """Retrains spent (round 0 does not count)."""
        return len(self.history) - 1

    @property
    def best(self) -> Round:
        """The round whose config is :attr:`config`."""
        return next(r for r in reversed(self.history) if r.config == self.config)

    def to_dict(self) -> dict[str, Any]:
        return {"healed": self.healed, "strategy": self.strategy, "metric": self.metric,
                "rounds": self.rounds, "config": _jsonable(self.config),
                "history": [r.to_dict() for r in self.history]}

    def summary(self) -> str:
        first, best = self.history[0], self.best
        verdict = (f"healed in {best.index} round{'s' if best.index != 1 else ''}" if self.healed
                   else f"not healed after {self.rounds} round{'s' if self.rounds != 1 else ''}")
        return (f"{verdict}: {first.sentence()} -> {best.sentence()}")


# ---- helpers -----------------------------------------------------------------------------------
def _fmt_change(change: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v:g}"
                     if isinstance(v, float) else f"{k}={v}" for k, v in change.items())


def _jsonable(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def _metric_name(log: TrainingLog, metric: str | None) -> str | None:
    if metric is not None:
        return metric
    for name in ("val/accuracy", "val/loss", "train/loss"):
        if log.has(name):
            return name
    return None


def _higher(name: str) -> bool:
    return any(w in name for w in ("acc", "f1", "auc", "precision", "recall"))


def _last(log: TrainingLog, name: str | None) -> float | None:
    if name is None or not log.has(name):
        return None
    values = log.get(name).values
    if not len(values):
        return None
    v = float(values[-1])
    return v  # a non-finite last value is the run's outcome: keep it


def _key_values(log: TrainingLog, name: str | None) -> np.ndarray:
    if name is None or not log.has(name):
        return np.zeros(0)
    v = np.asarray(log.get(name).values, dtype=float)
    return v[np.isfinite(v)]


def _noise(log: TrainingLog, name: str | None) -> float:
    """The run's own noise on the key metric: the standard deviation of its last (up to) 5
    finite values around their least-squares line (0 with fewer than 3 values)."""
    v = _key_values(log, name)[-5:]
    if len(v) < 3:
        return 0.0
    x = np.arange(len(v), dtype=float)
    slope, icpt = np.polyfit(x, v, 1)
    return float(np.std(v - (slope * x + icpt), ddof=2 if len(v) > 3 else 1))


def _improving(log: TrainingLog, name: str | None) -> bool:
    """Was the key metric still getting better at the end? Its gain over the last third of the
    values (at least one step back) exceeds the noise."""
    v = _key_values(log, name)
    if len(v) < 3 or name is None:
        return False
    k = max(1, len(v) // 3)
    gain = (v[-1] - v[-1 - k]) * (1 if _higher(name) else -1)
    return bool(gain > max(_noise(log, name), 0.0))


def _at_floor(log: TrainingLog) -> bool:
    """Is the training loss the floor: the final training loss (median of the last tenth) is
    within 10% of the final validation loss, so the model fits its training data no better than
    unseen data (a capacity limit, not overfitting)?"""
    if not (log.has("train/loss") and log.has("val/loss")):
        return False
    t, v = _key_values(log, "train/loss"), _key_values(log, "val/loss")
    if not len(t) or not len(v) or v[-1] <= 0:
        return False
    train = float(np.median(t[-max(1, len(t) // 10):]))
    return bool((v[-1] - train) / v[-1] < 0.1)


def _gained(a: Round, b: Round, name: str | None) -> bool:
    """An improving round's keep rule: ``a`` is healthy and its metric beats ``b``'s by more
    than the noise of either run."""
    if not a.healthy or a.metric is None or b.metric is None or name is None \
            or not (math.isfinite(a.metric) and math.isfinite(b.metric)):
        return False
    gain = (a.metric - b.metric) * (1 if _higher(name) else -1)
    return gain > max(_noise(a.log, name), _noise(b.log, name))


def _better(a: Round, b: Round, name: str | None) -> bool:
    """Is run ``a`` better than run ``b``? Healthy first, then the metric (non-finite worst)."""
    if a.healthy != b.healthy:
        return a.healthy
    if a.metric is None or b.metric is None or name is None:
        return len(a.diagnosis.problems) < len(b.diagnosis.problems)
    ka = a.metric if math.isfinite(a.metric) else -math.inf if _higher(name) else math.inf
    kb = b.metric if math.isfinite(b.metric) else -math.inf if _higher(name) else math.inf
    if ka == kb:  # a tie (or both non-finite): fewer problems is better
        return len(a.diagnosis.problems) < len(b.diagnosis.problems)
    return ka > kb if _higher(name) else ka < kb


def _cured(a: Round, b: Round, name: str | None) -> bool:
    """Did run ``a``'s change remove a problem of ``b`` (the one it was made for, or another
    it explained), add none, and leave the metric no worse? (A random change names no problem,
    so it never counts as a cure.)"""
    before = {f.code for f in b.diagnosis.problems}
    after = {f.code for f in a.diagnosis.problems}
    return (a.code in before and after < before and not _better(b, a, name))


def _as_log(out: Any) -> tuple[TrainingLog, str | None]:
    if isinstance(out, TrainingLog):
        return out, out.source
    if isinstance(out, (str, os.PathLike)):
        return load(out), str(out)
    raise LRDoctorError(f"train_fn must return a TrainingLog or a log path, got "
                        f"{type(out).__name__}")


def _peak(spec: str) -> float | None:
    """The largest lr of a concrete schedule spec (sampled over its duration), or None."""
    from lrdoctor.schedules import parse

    try:
        sched = parse(spec)
    except ValueError:
        return None
    n = sched.duration or 10_000
    stride = max(1, n // 2000)
    return max((sched(k) for k in range(0, n + 1, stride)), default=None)


def apply_change(config: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with ``change`` applied, by the vocabulary's rules: an ``lr`` change on a
    config whose ``schedule`` is a concrete spec (no ``{lr}`` in it, so ``lr`` alone would not
    move it) scales that spec so its peak is the new lr: ``(spec) * (lr / peak)``; a ``width``
    of ``'x<k>'`` is ``round(k * width)`` of the config's int width (a config without one
    raises :class:`~lrdoctor.errors.UnsupportedChange`: repair skips the change).

    >>> apply_change({"lr": 0.1, "schedule": "linear(0.1, end=10, steps=200)"}, {"lr": 0.5})
    {'lr': 0.5, 'schedule': '(linear(0.1, end=10, steps=200)) * 0.05'}
    >>> apply_change({"width": 2}, {"width": "x16"})
    {'width': 32}
    """
    cfg = {**config, **change}
    k = width_factor(change.get("width"))
    if k is not None:
        width = config.get("width")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise UnsupportedChange("width", f"a relative width {change['width']!r} needs an "
                                    f"int width in the config, got {width!r}")
        cfg["width"] = max(1, round(k * width))
    spec = config.get("schedule")
    if "lr" in change and "schedule" not in change and isinstance(spec, str) \
            and "{lr}" not in spec:
        peak = _peak(spec)
        if peak and peak > 0 and math.isfinite(peak):
            cfg["schedule"] = f"({spec}) * {float(change['lr']) / peak:.6g}"
    return cfg


def _journal(journal: Journal | str | os.PathLike[str] | None) -> Journal | None:
    if journal is None or isinstance(journal, Journal):
        return journal
    return Journal(journal)


def _record(journal: Journal | None, r: Round, base: Round | None, rounds: int) -> None:
    if journal is None:
        return
    lr_old = base.config.get("lr") if base is not None else r.config.get("lr")
    lr_new = r.config.get("lr")
    lrs = ((float(lr_old),), (float(lr_new),)) if isinstance(lr_old, (int, float)) and \
        isinstance(lr_new, (int, float)) else ((), ())
    journal.append(Entry("repair", epoch=r.index, step=None, old_lrs=lrs[0], new_lrs=lrs[1],
                         evidence={"round": r.index, "rounds": rounds, "code": r.code,
                                   "change": r.change, "metric": r.metric,
                                   "healthy": r.healthy, "kept": r.kept, "source": r.source,
                                   "findings": [f.code for f in r.diagnosis.problems],
                                   "skipped": [{"code": a.code, "change": a.change,
                                                "reason": a.reason} for a in r.skipped]},
                         message=r.sentence()))


# ---- the loop ---------------------------------------------------------------------------------
def _doctor_changes(base: Round, rng: random.Random) -> Iterator[tuple[str, dict[str, Any]]]:
    for f in base.diagnosis.problems:
        for change in f.changes:
            yield f.code, dict(change)


def _improving_changes(base: Round, cure: list[tuple[str, dict[str, Any]]],
                       name: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """The improving rounds' candidates for a healthy ``base`` (module docstring): lr x3 and
    epochs x2 while the key metric still rose at the end, the info findings' changes, then
    ``cure`` (the healing finding's other alternatives)."""
    cfg = base.config
    lr, epochs, width = cfg.get("lr"), cfg.get("epochs"), cfg.get("width")
    wider = []
    if isinstance(width, int) and not isinstance(width, bool) and _at_floor(base.log):
        from lrdoctor.doctor._changes import _width_factor
        from lrdoctor.doctor._context import Context

        wider = [("loss-at-floor", {"width": f"x{_width_factor(Context(base.log))}"})]
    if _improving(base.log, name):
        if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0:
            yield "still-improving", {"lr": float(f"{lr * 3:.3g}")}
        yield from wider
        if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 1:
            yield "still-improving", {"epochs": 2 * epochs}
    else:
        yield from wider
    for f in base.diagnosis.findings:
        if f.severity == "info":
            for change in f.changes:
                yield f.code, dict(change)
    yield from cure


def _random_changes(base: Round, rng: random.Random) -> Iterator[tuple[str, dict[str, Any]]]:
    knobs = [k for k in KNOBS if k in base.config]
    for _ in range(200):
        if not knobs:
            return
        k = rng.choice(knobs)
        options = [v for v in KNOBS[k].choices if v != base.config[k]]
        if options:
            yield "random", {k: rng.choice(options)}


def _loop(train_fn: TrainFn, config: Mapping[str, Any], rounds: int, strategy: str,
          propose: Callable[[Round, random.Random], Iterator[tuple[str, dict[str, Any]]]],
          *, seed: int, metric: str | None, journal: Any, progress: Progress | None,
          improve: bool = True) -> RepairResult:
    if not callable(train_fn):
        raise LRDoctorError("train_fn must be a callable config -> TrainingLog | path")
    if not isinstance(config, Mapping):
        raise LRDoctorError(f"config must be a dict of training knobs, got {type(config).__name__}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise LRDoctorError(f"rounds must be an int >= 0, got {rounds!r}")
    rng = random.Random(seed)
    jr = _journal(journal)

    def say(i: int, text: str) -> None:
        logger.info("repair round %d/%d: %s", i, rounds, text)
        if progress is not None:
            progress(i, rounds, text)

    def run(cfg: dict[str, Any], index: int, code: str | None, change: dict[str, Any] | None,
            skipped: tuple[Attempt, ...], improving: bool = False) -> Round:
        log, source = _as_log(train_fn(dict(cfg)))
        diag = diagnose(log)
        name = _metric_name(log, metric)
        return Round(index, dict(cfg), diag, log, _last(log, name), not diag.problems, code,
                     change, True, skipped, source, improving)

    say(0, "training the run as given")
    base = run(dict(config), 0, None, None, ())
    name = metric or _metric_name(base.log, None)
    history = [base]
    _record(jr, base, None, rounds)
    say(0, base.sentence())
    tried: list[dict[str, Any]] = []
    all_skipped: list[Attempt] = []
    cure: list[tuple[str, dict[str, Any]]] = []   # the healing finding's other alternatives
    while (improve or not base.healthy) and len(history) <= rounds:
        index = len(history)
        improving = base.healthy
        skipped: list[Attempt] = []
        result = None
        if improving:
            candidates = (_improving_changes(base, cure, name) if strategy == "doctor"
                          else propose(base, rng))
        else:
            candidates = propose(base, rng)
        for code, change in candidates:
            if change in tried:
                continue
            tried.append(change)
            missing = [k for k in change if k not in base.config]
            if missing:
                skipped.append(Attempt(code, change, f"the config has no knob {missing[0]!r}"))
                continue
            try:
                cfg = apply_change(base.config, change)
                if cfg == base.config:
                    continue  # the config already has it
                say(index, f"{_fmt_change(change)} (for {code})")
                result = run(cfg, index, code, change, tuple(skipped), improving)
            except UnsupportedChange as err:
                skipped.append(Attempt(code, change, str(err)))
                continue
            break
        all_skipped += skipped
        if result is None:
            say(index, "no untried change left")
            break
        if improving:
            kept = _gained(result, base, name)
        else:
            kept = _better(result, base, name) or _cured(result, base, name)
        result = dataclasses.replace(result, kept=kept)
        history.append(result)
        _record(jr, result, base, rounds)
        say(index, result.sentence())
        if kept:
            if not improving and result.healthy:
                cure = [(c, dict(ch)) for f in base.diagnosis.problems if f.code == result.code
                        for c, ch in [(f.code, x) for x in f.changes]]
            base = result  # changes tried so far stay tried
    healed = base.healthy
    return RepairResult(healed, dict(base.config), tuple(history), name, strategy,
                        tuple(all_skipped))


def repair(train_fn: TrainFn, config: Mapping[str, Any], *, rounds: int = 3,
           metric: str | None = None, journal: Journal | str | os.PathLike[str] | None = None,
           progress: Progress | None = None, improve: bool = True) -> RepairResult:
    """Train, diagnose, apply the best untried change, retrain; stop when healthy.

    ``train_fn(config) -> TrainingLog | path`` trains one run; ``config`` is a dict whose keys
    include the knobs it supports (vocabulary: docs/repair.md). ``metric`` is the log series
    that decides whether a change is kept (default: ``val/accuracy``, else ``val/loss``, else
    ``train/loss``; higher is better for accuracy-like names). ``journal`` (a path or a
    :class:`~lrdoctor.journal.Journal`) receives one ``repair`` entry per round.
    ``improve``: once healthy, spend the rounds left on changes kept only when the key metric
    gains more than the run's noise (module docstring); False stops at the first healthy run.
    """
    return _loop(train_fn, config, rounds, "doctor", _doctor_changes, seed=0, metric=metric,
                 journal=journal, progress=progress, improve=improve)


def random_repair(train_fn: TrainFn, config: Mapping[str, Any], *, rounds: int = 3,
                  seed: int = 0, metric: str | None = None,
                  journal: Journal | str | os.PathLike[str] | None = None,
                  progress: Progress | None = None, improve: bool = True) -> RepairResult:
    """The baseline: :func:`repair`'s loop and budget with one random knob per round, set to a
    value drawn from the vocabulary's ``choices`` (seeded by ``seed``); its improving rounds
    draw random changes too, under the same keep rule."""
    return _loop(train_fn, config, rounds, "random", _random_changes, seed=seed, metric=metric,
                 journal=journal, progress=progress, improve=improve)


def repair_example(name: str, fault: str | None = None, *, rounds: int = 3,
                   out_dir: str | os.PathLike[str] | None = None, epochs: int | None = None,
                   seed: int = 0, strategy: str = "doctor",
                   progress: Progress | None = None) -> RepairResult:
    """:func:`repair` on example task ``name`` with fault kind ``fault`` injected
    (:data:`lrdoctor.examples._repair.FAULTS`); logs and ``journal.jsonl`` go to ``out_dir``
    (default: a temporary folder). ``strategy='random'`` runs :func:`random_repair`."""
    import tempfile

    from lrdoctor.examples._repair import ExampleTrainer, fault_config

    if strategy not in ("doctor", "random"):
        raise LRDoctorError(f"strategy must be 'doctor' or 'random', got {strategy!r}")
    if epochs is not None and epochs < 1:
        raise LRDoctorError(f"epochs must be >= 1, got {epochs}")
    cfg = fault_config(name, fault, seed=seed, epochs=epochs)
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="lrdoctor-"))
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "journal.jsonl"
    journal.unlink(missing_ok=True)
    trainer = ExampleTrainer(out)
    fn = repair if strategy == "doctor" else random_repair
    return fn(trainer, cfg, rounds=rounds, journal=journal, progress=progress)
