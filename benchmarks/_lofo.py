"""Leave-one-family-out scoring of the doctor on the fault corpus (benchmarks/_corpus.py).

Scoring, for one log kind (``jsonl``: the live Monitor log; ``csv``: the Keras CSVLogger
columns only):

* a run's **predicted class** is its first finding of severity warning/critical whose code is a
  corpus class (an expected code of some run, or ``healthy``); ``healthy`` when there is none;
  a prediction among the fault's accepted codes (codes that also name its cause) counts as the
  expected one;
* **macro-F1**: the mean over the classes present of F1 = 2PR/(P+R), with P and R from the
  (expected, predicted) pairs;
* **top-1**: the share of runs whose first warning/critical finding is the expected code or an
  accepted one (for a healthy run: that there is no such finding);
* **false alarms**: healthy runs with any warning/critical finding;
* **look-alike-group macro-F1** (:data:`GROUP_RULE`): where the doctor says that the log
  cannot tell look-alike causes apart, its finding names them (``Finding.candidates``, at most 3,
  from ``data["candidates"]``, with the one check that splits them in ``data["check"]``); a run
  counts as right for the group when its expected code is among the candidates of the finding
  that made its prediction, else it is scored as its plain prediction, then macro-F1 as above.
  The candidates come from the doctor's rules, never from the corpus's knowledge of the fault;
  "healthy" is never a candidate (a false alarm stays one); plain macro-F1 is reported beside it;
* **columns-group macro-F1** (the former group score, kept for comparison): expected and
  predicted classes are first mapped to the corpus-derived look-alike groups
  (:func:`lookalike_groups`: classes whose per-epoch columns agree epoch by epoch), then
  macro-F1 over the groups.

Protocol (:func:`lofo`): for each family F, the doctor's tunable thresholds
(``lrdoctor.doctor._thresholds.REGISTRY``, each with candidate values) are chosen on the runs of
the other families by :func:`search`, a coordinate ascent of the objective - the mean of the
live and the curves-only macro-F1 on the training families - over a shortlist: each candidate
is first tried alone (the others at their defaults); each threshold whose best candidate alone
raises the objective by more than ``MARGIN`` (1e-3, about three runs' worth) is shortlisted;
then the shortlisted changes, best first, are tried on top of the values kept so far and kept
when the objective rises by more than ``MARGIN`` and the training families' false alarms do
not grow, for up to two passes. (A plain coordinate
ascent over every candidate re-diagnoses most runs for each of the ~100 candidates per pass and
fold: 290 s for one fold on a third of the corpus on this 2-core box, and it kept 28 changes
for a rise of 0.04, most of them worth a single run.) The chosen values then diagnose F's runs,
which the search did not see: those are the held-out figures; "overall" pools every fold's
held-out predictions.

Diagnoses are cached per (run, kind, the values of the thresholds that diagnosis read): the
benchmark records which thresholds each ``diagnose`` reads (it wraps the registry's attribute
access; were that to stop seeing reads, every threshold counts as read and nothing is reused),
so a candidate that a run's rules never consult reuses its findings. The cache is kept in
``out/corpus/diagnoses-<hash of the doctor's and the log readers' sources>.json``, so a re-run
on an unchanged doctor re-scores in seconds. Each entry keeps the warning/critical codes and,
per code, the finding's candidates (the cache file's ``v2`` name: the format that has them).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _corpus import CACHE, Run, RunResult

__all__ = [
    "GROUP_RULE", "Diagnoser", "group_pred", "lofo", "lookalike_groups", "macro_f1", "predict",
    "predicting_candidates", "score", "search", "top1_right",
]

#: The sources of the lrdoctor that is imported (not the checkout next to this file: with
#: PYTHONPATH or another install they differ, and the cache would file one doctor's diagnoses
#: under the other's hash).
SRC = Path(importlib.util.find_spec("lrdoctor").origin).parent  # type: ignore[arg-type]
KINDS = ("jsonl", "csv")
CRASH = "crash: "   # the code recorded when diagnose raised
Found = tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]  # (codes, candidates per code)
MARGIN = 1e-3       # a change must raise the objective by more (about 3 runs' worth)
MAX_CANDIDATES = 3  # a finding names at most this many look-alike causes (Finding checks it)

#: The look-alike-group scoring rule, as the RESULTS footnote states it.
GROUP_RULE = (
    "CSV group-F1: where the doctor says the columns cannot tell look-alike causes apart, its "
    "finding names them (Finding.candidates, at most 3, and the one check that splits them); a "
    "run counts as right for the group when its expected code is among the candidates of the "
    "finding that made its prediction (the candidates come from the doctor's rules, not from the "
    "corpus's fault labels; 'healthy' is never a candidate, so a false alarm stays one); plain "
    "macro-F1 is beside it")


def doctor_hash() -> str:
    """A hash of the doctor's and the log readers' sources: the diagnosis cache's key."""
    h = hashlib.sha256()
    for sub in ("doctor", "logs"):
        for p in sorted((SRC / sub).rglob("*.py")):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


class _Reads:
    """Records the threshold names read through ``T`` while it is active."""

    names: set[str] | None = None
    installed = False

    @classmethod
    def install(cls) -> bool:
        from lrdoctor.doctor import _thresholds as th

        if cls.installed:
            return True
        original = th._Values.__getattr__

        def tracking(self: Any, name: str) -> Any:
            if cls.names is not None:
                cls.names.add(name)
            return original(self, name)

        th._Values.__getattr__ = tracking  # type: ignore[method-assign]
        cls.installed = True
        return True


class Diagnoser:
    """Warning/critical finding codes of each (run, kind) under given threshold values, cached."""

    def __init__(self, pairs: Sequence[tuple[Run, RunResult]], *, cache_dir: Path = CACHE,
                 persist: bool = True):
        from lrdoctor.doctor import _thresholds as th

        self.th = th
        self.names = sorted(th.REGISTRY)
        self.defaults = {n: th.REGISTRY[n].default for n in self.names}
        self.pairs = list(pairs)
        self._logs: dict[tuple[str, str], Any] = {}
        self.path = cache_dir / f"diagnoses-v2-{doctor_hash()}.json" if persist else None
        self.entries: dict[str, list[tuple[tuple[str, ...], tuple[float, ...], Found]]] = {}
        if self.path is not None and self.path.exists():
            raw = json.loads(self.path.read_text())
            self.entries = {k: [(tuple(a), tuple(b), (tuple(c), tuple(tuple(x) for x in d)))
                                for a, b, c, d in v] for k, v in raw.items()}
        self.tracking = _Reads.install()
        self._exact: dict[tuple[str, tuple[tuple[str, float], ...]], Found] = {}
        self.diagnosed = 0
        self._dirty = False

    def log(self, result: RunResult, kind: str) -> Any:
        from lrdoctor.logs import load

        k = (result.key, kind)
        if k not in self._logs:
            self._logs[k] = load(result.jsonl if kind == "jsonl" else result.csv)
        return self._logs[k]

    def codes(self, result: RunResult, kind: str, values: dict[str, float]) -> tuple[str, ...]:
        """The run's warning/critical codes, ranked."""
        return self.found(result, kind, values)[0]

    def found(self, result: RunResult, kind: str, values: dict[str, float]) -> Found:
        """(codes, candidates): the warning/critical codes, ranked, and per code its
        finding's ``candidates`` (``(code,)`` when it names one cause)."""
        ck = f"{result.key}|{kind}"
        changed_key = (ck, tuple(sorted((n, v) for n, v in values.items()
                                        if v != self.defaults[n])))
        hit = self._exact.get(changed_key)
        if hit is not None:
            return hit
        for names, vals, found in self.entries.get(ck, ()):
            if all(values[n] == v for n, v in zip(names, vals, strict=True)):
                self._exact[changed_key] = found
                return found
        found = self._diagnose(result, kind, values)
        self._exact[changed_key] = found
        return found

    def _diagnose(self, result: RunResult, kind: str, values: dict[str, float]) -> Found:
        ck = f"{result.key}|{kind}"
        import lrdoctor.doctor as D

        changed = {n: v for n, v in values.items() if v != self.defaults[n]}
        _Reads.names = set()
        crashed = False
        try:
            with self.th.override(**changed):
                d = D.diagnose(self.log(result, kind))
            problems = [f for f in d.findings if f.severity != "info"]
            codes = tuple(f.code for f in problems)
            cands = tuple(tuple(f.candidates)[:MAX_CANDIDATES] for f in problems)
        except Exception as err:  # noqa: BLE001 - a doctor crash is scored as a wrong answer
            codes, crashed = (f"{CRASH}{type(err).__name__}: {err}",), True
            cands = ((),)
        finally:
            read, _Reads.names = _Reads.names, None
        if not read or crashed:  # treat every threshold as read (no reuse, still right)
            read = set(self.names)
        names = tuple(sorted(n for n in read if n in values))
        self.entries.setdefault(ck, []).append(
            (names, tuple(values[n] for n in names), (codes, cands)))
        self.diagnosed += 1
        self._dirty = True
        return codes, cands

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({k: [[list(a), list(b), list(c), [list(x) for x in d]]
                                       for a, b, (c, d) in v]
                                   for k, v in self.entries.items()}))
        os.replace(tmp, self.path)
        self._dirty = False


# ----------------------------------------------------------------------------- scoring
def predict(codes: Sequence[str], run: Run, classes: set[str]) -> str:
    """The run's predicted class from its ranked warning/critical codes."""
    pred = next((c for c in codes if c in classes), "healthy")
    return run.expected if pred in run.accepted else pred


def predicting_candidates(codes: Sequence[str], cands: Sequence[Sequence[str]],
                          classes: set[str]) -> tuple[str, ...]:
    """The candidates (at most 3) of the finding that made the prediction; () when none did."""
    i = next((i for i, c in enumerate(codes) if c in classes), None)
    if i is None or i >= len(cands):
        return ()
    return tuple(c for c in cands[i][:MAX_CANDIDATES] if c != "healthy")


def group_pred(row: dict[str, Any]) -> str:
    """:data:`GROUP_RULE`: the expected code when it (or one of the fault's accepted codes, as
    in :func:`predict`) is among the predicting finding's candidates (a faulty run only), else
    the plain prediction."""
    exp, cands = row["expected"], row.get("cands", ())
    right = (exp, *row["run"].accepted) if "run" in row else (exp,)
    return exp if exp != "healthy" and any(c in cands for c in right) else row["pred"]


def top1_right(codes: Sequence[str], run: Run) -> bool:
    """Whether the first warning/critical finding is right (none at all, for a healthy run)."""
    if run.expected == "healthy":
        return not codes
    return bool(codes) and codes[0] in (run.expected, *run.accepted)


def macro_f1(pairs: Iterable[tuple[str, str]]) -> float:
    """Mean F1 over the expected labels present; predictions outside them count as wrong."""
    pairs = list(pairs)
    labels = sorted({t for t, _ in pairs})
    if not labels:
        return math.nan
    conf = Counter(pairs)
    f1s = []
    for c in labels:
        tp = conf[(c, c)]
        fp = sum(v for (t, p), v in conf.items() if p == c and t != c)
        fn = sum(v for (t, p), v in conf.items() if t == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(f1s))


def score(rows: Sequence[dict[str, Any]], groups: dict[str, str] | None = None) -> dict[str, float]:
    """macro-F1, top-1, false alarms (count and healthy runs), the look-alike-group macro-F1 by
    the doctor's candidates (``group_f1``, :data:`GROUP_RULE`) and, with ``groups``, the
    corpus-derived columns-group macro-F1 (``columns_group_f1``)."""
    pairs = [(r["expected"], r["pred"]) for r in rows]
    out = {"macro_f1": macro_f1(pairs),
           "top1": float(np.mean([r["top1"] for r in rows])) if rows else math.nan,
           "false_alarms": sum(1 for r in rows if r["expected"] == "healthy" and r["codes"]),
           "healthy": sum(1 for r in rows if r["expected"] == "healthy"), "runs": len(rows),
           "group_f1": macro_f1((r["expected"], group_pred(r)) for r in rows)}
    if groups is not None:
        out["columns_group_f1"] = macro_f1((groups.get(t, t), groups.get(p, p)) for t, p in pairs)
    return out


def rows_for(diag: Diagnoser, pairs: Sequence[tuple[Run, RunResult]], kind: str,
             values: dict[str, float], classes: set[str]) -> list[dict[str, Any]]:
    out = []
    for run, res in pairs:
        codes, cands = diag.found(res, kind, values)
        out.append({"run": run, "result": res, "expected": run.expected,
                    "pred": predict(codes, run, classes), "top1": top1_right(codes, run),
                    "codes": codes, "cands": predicting_candidates(codes, cands, classes)})
    return out


# ----------------------------------------------------------------------------- look-alikes
def _columns(result: RunResult) -> dict[str, np.ndarray]:
    h = result.history
    cols = {k: np.array([row.get(k, math.nan) for row in h], dtype=float)
            for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    lr = np.array([row["lr"] for row in h], dtype=float)
    cols["lr_shape"] = lr / lr[0] if len(lr) and lr[0] > 0 else lr
    return cols


def _same_columns(a: RunResult, b: RunResult) -> bool:
    """Whether two runs' per-epoch columns agree to within noise (2% loss, 1 point accuracy,
    the same LR shape), epoch by epoch; both non-finite counts as agreeing."""
    ca, cb = _columns(a), _columns(b)
    if len(ca["loss"]) != len(cb["loss"]):
        return False
    for k, tol in (("loss", 0.02), ("val_loss", 0.02), ("accuracy", 0.01),
                   ("val_accuracy", 0.01), ("lr_shape", 0.01)):
        x, y = ca[k], cb[k]
        if np.all(np.isnan(x)) and np.all(np.isnan(y)):
            continue
        fx, fy = np.isfinite(x), np.isfinite(y)
        if not np.array_equal(fx, fy):
            return False
        x, y = x[fx], y[fx]
        scale = np.maximum(np.abs(x), np.abs(y)) if "loss" in k else 1.0
        if np.any(np.abs(x - y) > tol * np.maximum(scale, 1e-12)):
            return False
    return True


def lookalike_groups(pairs: Sequence[tuple[Run, RunResult]], *, share: float = 0.5
                     ) -> tuple[dict[str, str], list[tuple[str, str, int, int]]]:
    """Groups of classes whose per-epoch columns cannot be told apart, from the corpus itself.

    For each (family, seed), every run of class A is compared with every run of class B
    (:func:`_same_columns`); classes A and B are look-alikes when, over the (family, seed)
    cells where both occur, at least ``share`` of the cells hold such an identical pair. Groups
    are the connected components; returns class -> group name ("a|b|...") and the evidence
    (A, B, cells with an identical pair, cells with both).
    """
    by_cell: dict[tuple[str, int], dict[str, list[RunResult]]] = {}
    for run, res in pairs:
        by_cell.setdefault((run.family, run.seed), {}).setdefault(run.expected, []).append(res)
    hits: Counter[tuple[str, str]] = Counter()
    both: Counter[tuple[str, str]] = Counter()
    for cell in by_cell.values():
        labels = sorted(cell)
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                both[(a, b)] += 1
                if any(_same_columns(x, y) for x in cell[a] for y in cell[b]):
                    hits[(a, b)] += 1
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    evidence = []
    for (a, b), n in sorted(both.items()):
        if hits[(a, b)]:
            evidence.append((a, b, hits[(a, b)], n))
        if n and hits[(a, b)] / n >= share:
            parent[find(a)] = find(b)
    members: dict[str, list[str]] = {}
    for label in {r.expected for r, _ in pairs}:
        members.setdefault(find(label), []).append(label)
    groups = {}
    for ms in members.values():
        name = "|".join(sorted(ms))
        for m in ms:
            groups[m] = name
    return groups, evidence


# ----------------------------------------------------------------------------- search
def _objective(diag: Diagnoser, pairs: Sequence[tuple[Run, RunResult]], values: dict[str, float],
               classes: set[str]) -> float:
    return _scored(diag, pairs, values, classes)[0]


def _scored(diag: Diagnoser, pairs: Sequence[tuple[Run, RunResult]], values: dict[str, float],
            classes: set[str]) -> tuple[float, int]:
    """(mean of live and curves-only macro-F1, false alarms live + curves-only) on ``pairs``."""
    scores = [score(rows_for(diag, pairs, k, values, classes)) for k in KINDS]
    return (float(np.mean([s["macro_f1"] for s in scores])),
            sum(int(s["false_alarms"]) for s in scores))


def search(diag: Diagnoser, pairs: Sequence[tuple[Run, RunResult]], classes: set[str], *,
           margin: float = MARGIN, passes: int = 2) -> tuple[dict[str, float], float, list[str]]:
    """Threshold values chosen on ``pairs``: coordinate ascent over a shortlist.

    1. Every candidate of every threshold is tried alone, the others at their defaults; its gain
       is the objective's rise over the defaults' (the objective: mean of live and curves-only
       macro-F1 on ``pairs``). A change that adds false alarms on the healthy runs of
       ``pairs`` (live plus curves-only) is never taken, whatever its gain: the goal is none.
    2. The shortlist: per threshold its best candidate, where that gain exceeds ``margin``,
       best first. Coordinate ascent over it: each change is tried on top of the values kept so
       far and kept when the objective rises by more than ``margin``; up to ``passes`` passes,
       stopping when a pass keeps nothing.

    Returns the values, their objective and the shortlist (``name=value (+gain)``).
    """
    base_values = dict(diag.defaults)
    base, base_alarms = _scored(diag, pairs, base_values, classes)
    best_single: dict[str, tuple[float, float]] = {}
    for name in diag.names:
        for cand in diag.th.REGISTRY[name].candidates:
            if cand == diag.defaults[name]:
                continue
            s, alarms = _scored(diag, pairs, {**base_values, name: cand}, classes)
            gain = s - base
            if (gain > margin and alarms <= base_alarms
                    and gain > best_single.get(name, (0.0, -math.inf))[1]):
                best_single[name] = (cand, gain)
    shortlist = sorted(best_single.items(), key=lambda kv: -kv[1][1])
    values, best, best_alarms = dict(base_values), base, base_alarms
    for _ in range(passes):
        moved = False
        for name, (cand, _gain) in shortlist:
            if values[name] == cand:
                continue
            trial = {**values, name: cand}
            s, alarms = _scored(diag, pairs, trial, classes)
            if s > best + margin and alarms <= best_alarms:
                values, best, best_alarms, moved = trial, s, alarms, True
        if not moved:
            break
    return values, best, [f"{n}={c:g} (+{g:.4f})" for n, (c, g) in shortlist]


_search = search


def lofo(pairs: Sequence[tuple[Run, RunResult]], families: Sequence[str], *,
         search: bool = True, passes: int = 2,
         progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Leave-one-family-out: per held-out family, the chosen values and its scored rows."""
    diag = Diagnoser(pairs)
    classes = {r.expected for r, _ in pairs}
    folds = {}
    t0 = time.perf_counter()
    try:
        for fam in families:
            train = [p for p in pairs if p[0].family != fam]
            test = [p for p in pairs if p[0].family == fam]
            if search:
                values, obj, names = _search(diag, train, classes, passes=passes)
            else:
                names, values = [], dict(diag.defaults)
                obj = _objective(diag, train, values, classes)
            changed = {n: v for n, v in values.items() if v != diag.defaults[n]}
            folds[fam] = {"values": values, "changed": changed, "searched": names,
                          "train_objective": obj,
                          "rows": {k: rows_for(diag, test, k, values, classes) for k in KINDS},
                          "default_rows": {k: rows_for(diag, test, k, diag.defaults, classes)
                                           for k in KINDS}}
            diag.save()
            if progress is not None:
                progress(f"lofo: held out {fam}: shortlist {len(names)}, changed "
                         f"{changed or 'none'}; train objective {obj:.3f} "
                         f"({diag.diagnosed} diagnoses so far, {time.perf_counter() - t0:.0f} s)")
    finally:
        diag.save()
    return {"folds": folds, "classes": classes, "diagnosed": diag.diagnosed,
            "seconds": time.perf_counter() - t0}
