"""The training doctor, measured: the leave-one-family-out corpus table and P3 (P4 and P6 are
bench_monitor.py and bench_logs.py).

**LOFO (the default table; ``make bench BENCH=doctor`` or ``BENCH=doctor-lofo``).** The fault
corpus (benchmarks/_corpus.py: 9 task families from benchmarks/_families.py, 22 fault kinds at 2-3
variants each, healthy runs with every LR style, seeds 0-2) is diagnosed from the live Monitor
JSONL and from the Keras-CSV columns. For each family, the doctor's tunable thresholds
(``lrdoctor.doctor._thresholds``) are chosen by coordinate ascent on the other 8 families and
that family is scored with them (benchmarks/_lofo.py has the protocol and the scoring). Printed:
per held-out family and pooled, macro-F1 and top-1 (live and curves-only), look-alike-group
macro-F1 (curves only), false alarms on healthy runs per family and LR style, per-fault recall
and whether each fault bites, and the threshold values each fold picked.

    python benchmarks/bench_doctor.py lofo                 # train what is missing, then score
    python benchmarks/bench_doctor.py lofo --rediagnose    # score the cached logs only
    python benchmarks/bench_doctor.py lofo --rediagnose --no-search   # shipped defaults only
    python benchmarks/bench_doctor.py lofo --rediagnose --dry  # print only, no RESULTS entry

**Iterating on rules (fast, prints per run, records nothing):**

    python benchmarks/bench_doctor.py --corpus --rediagnose [--family F] [--fault K] --explain
        [--seed S] [--misses]

prints for each cached corpus run (shipped threshold defaults) the family, fault, variant and
seed, the expected code (and the accepted ones), whether the fault bites, the warning/critical
findings from the live log and from the CSV columns, ``ok``/``MISS`` for each, and at the end
macro-F1 and top-1 of the selection. ``--misses`` prints only runs missed in either kind.
Several ``--family``/``--fault`` may be given (comma-separated too). Without ``--rediagnose``
missing runs are trained first (2 worker processes, nice 10, 1 torch thread each; the whole
corpus is ~1400 runs, about 15-25 min on this 2-core box). Logs are cached in ``out/corpus/``
keyed by the run's config; diagnoses in ``out/corpus/diagnoses-<doctor source hash>.json``.

The older P3 (two example tasks, below) stays as ``bench_doctor.py p3``.

P3: every fault below is injected for real into ``digits-mlp`` and ``mnist1d-conv`` (lrdoctor.
examples), >= 3 seeds, plus healthy controls. Each run is diagnosed twice: from the live Monitor
JSONL, and from the same run reduced to what a Keras CSVLogger holds (per-epoch loss, accuracy,
val_loss, val_accuracy, lr). The predicted class of a run is its top-ranked finding of severity
warning/critical whose code is one of the benchmark's classes (or 'healthy' when there is none);
a fault counts as detected when its expected code (or an accepted alternative) is among the
warning/critical findings. Thresholds were tuned on seeds 0-3 (TUNE_SEEDS: first on seed 0;
a first report on seeds 1-3 exposed three rule bugs that were fixed, so those seeds count as
tuning too; the per-epoch signature rules for the CSV columns were tuned on seeds 0-3 from the
cached logs, without looking at seeds 4-6); seeds 4-6 were reported, then looked at, and count
as tuning seeds since 2026-12-02; seeds 7-9 were reported next and showed one false alarm
(overfitting called on a healthy run), after which the overfitting rule was made to need a rise
confirmed by the last 2 evaluations (checked on seeds 0-6 only), so 7-9 count as tuning too; the
tables report seeds 10-12 (REPORT_SEEDS) only.
Latency: the earliest fraction of the run (10%, 20%, ... of the steps) at which the log, cut
there, already yields the right finding.

The CSV half has a ceiling below 1: some faults end in the same state and leave the same
per-epoch columns. Weight decay 0.3, negative-bias dead ReLUs and the one-channel mnist1d-conv
(tiny-model) are all a dead network pinned at chance; a huge init and inputs x255 on digits-mlp
both blow up in epoch 0 and fall back to that dead network. With one label per such group
(dead-relu; unnormalized-input; and bad-initialization for a first-epoch overflow at an ordinary
lr) and everything else right, seeds 0-3's macro-F1 is at most 0.874 (0.845 if digits-mlp's
Adam at 30x, which trains to 86-90%, counts as not separable from a healthy run).

    python benchmarks/bench_doctor.py            # all, ~10 min on 2 cores
    python benchmarks/bench_doctor.py --quick    # one seed, for a smoke test
    python benchmarks/bench_doctor.py p3 --rediagnose   # re-diagnose the cached report logs

Every P3 run keeps its logs (``<task>_<fault>_<seed>.jsonl``, ``.csv`` and a ``.json`` with the
run's summary) in ``out/bench_doctor/`` (CACHE); ``--rediagnose`` reads them back instead of
training again, so a change to the rules is re-measured in seconds. Tuning prints per run:

    python benchmarks/bench_doctor.py --tune                 # train TUNE_SEEDS into the cache
    python benchmarks/bench_doctor.py --tune --rediagnose    # re-diagnose (FAULTS=.., SEEDS=..)
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

TASKS = ("digits-mlp", "mnist1d-conv")
TUNE_SEEDS = tuple(range(10))        # thresholds were tuned looking at these
REPORT_SEEDS = (10, 11, 12)          # ... and are reported on these only
FRACTIONS = tuple(round(0.1 * i, 1) for i in range(1, 11))
CACHE = Path(__file__).resolve().parents[1] / "out" / "bench_doctor"   # gitignored (/out/)


@dataclass(frozen=True)
class Fault:
    name: str
    expected: str                      # the finding code that names this fault
    accepted: tuple[str, ...] = ()     # other codes that also name the cause correctly
    model: dict[str, Any] = field(default_factory=dict)   # example-model options
    optimizer: str = "sgd"
    lr_factor: float = 1.0
    weight_decay: float = 0.0
    data: str = ""                     # x255 | sorted | noise40 | little
    plateau_min_on_acc: bool = False
    neg_bias: bool = False
    epochs_factor: float = 1.0


FAULTS = (
    Fault("healthy-sgd", "healthy"),
    Fault("healthy-adam", "healthy", optimizer="adam"),
    Fault("lr-x100", "lr-too-high", ("diverging", "nonfinite", "exploding-gradients"),
          lr_factor=100),
    Fault("lr-div1000", "lr-too-low", lr_factor=1e-3),
    Fault("deep-sigmoid", "vanishing-gradients", ("saturated-activations",),
          model={"activation": "sigmoid"}),
    Fault("inputs-x255", "unnormalized-input", data="x255"),
    Fault("sorted-labels", "unshuffled-data", data="sorted"),
    Fault("label-noise-40", "label-noise", data="noise40"),
    Fault("weight-decay-strong", "over-regularization", weight_decay=0.3),
    Fault("dropout-0.9", "over-regularization", model={"dropout": 0.9}),
    Fault("tiny-model", "underfitting"),
    Fault("big-model-little-data", "overfitting", data="little", epochs_factor=4),
    Fault("plateau-min-on-acc", "plateau-monitor-mismatch", plateau_min_on_acc=True),
    Fault("adam-high-lr-no-warmup", "missing-warmup", ("lr-too-high",), optimizer="adam",
          lr_factor=30),
    Fault("dying-relu-neg-bias", "dead-relu", ("bad-initialization",), neg_bias=True),
    Fault("softmax-before-ce", "loss-activation-mismatch", model={"softmax_output": True}),
    Fault("huge-init", "bad-initialization", ("saturated-activations",),
          model={"init": "normal:3.0"}),
)

#: per-task model options for the faults that depend on the architecture
_ARCH = {
    "digits-mlp": {"deep-sigmoid": {"hidden": (64,) * 8}, "tiny-model": {"hidden": (2,)},
                   "big-model-little-data": {"hidden": (1024, 1024)}},
    "mnist1d-conv": {"deep-sigmoid": {}, "tiny-model": {"channels": 1},
                     "big-model-little-data": {"channels": 256}},
}


def run_one(args: tuple[str, Fault, int, str]) -> dict[str, Any]:
    """Train one (task, fault, seed) with a Monitor; write its JSONL and Keras-style CSV."""
    import torch

    from lrdoctor import examples
    from lrdoctor.torch import Monitor

    task_name, fault, seed, out_dir = args
    torch.set_num_threads(1)
    options = dict(fault.model)
    options.update(_ARCH[task_name].get(fault.name, {}))
    n_train = 100 if fault.data == "little" else None
    task = examples.get(task_name, seed=seed, **options, **({"n_train": n_train} if n_train else {}))
    x, y = task.data.x_train.copy(), task.data.y_train.copy()
    rng = np.random.default_rng(1000 + seed)
    if fault.data == "x255":
        x = x * 255.0
    if fault.data == "noise40":
        flip = rng.random(len(y)) < 0.4
        y = y.copy()
        y[flip] = rng.integers(0, task.data.n_classes, flip.sum())
    if fault.data == "sorted":
        order = np.argsort(y, kind="stable")
        x, y = x[order], y[order]
    xv, yv = task.data.x_val, task.data.y_val
    if fault.data == "x255":
        xv = xv * 255.0
    torch.manual_seed(seed)
    model = task.build_model(seed)
    if fault.neg_bias:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d)) and m.bias is not None:
                    m.bias.fill_(-3.0)
    base_lr = task.reference_lrs[fault.optimizer]
    lr = base_lr * fault.lr_factor
    if fault.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=fault.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=fault.weight_decay)
    sched = None
    if fault.plateau_min_on_acc:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.3, patience=1)
    epochs = max(1, round(task.epochs * fault.epochs_factor))
    tag = f"{task_name}_{fault.name}_{seed}"
    jsonl = Path(out_dir) / f"{tag}.jsonl"
    csv_path = Path(out_dir) / f"{tag}.csv"
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    xvt = torch.as_tensor(xv, dtype=torch.float32)
    yvt = torch.as_tensor(yv, dtype=torch.long)
    bs = task.batch_size
    loss_fn = task.loss_fn
    rows = []
    gen = torch.Generator().manual_seed(seed)
    diverged = False
    with Monitor(model, opt, jsonl, loss_fn=loss_fn) as mon:
        for epoch in range(epochs):
            model.train()
            order = (torch.arange(len(yt)) if fault.data == "sorted"
                     else torch.randperm(len(yt), generator=gen))
            tot, correct, count = 0.0, 0, 0
            for i in range(0, len(order), bs):
                idx = order[i:i + bs]
                xb, yb = xt[idx], yt[idx]
                opt.zero_grad(set_to_none=True)
                out = model(xb)
                loss = loss_fn(out, yb)
                loss.backward()
                opt.step()
                value = float(loss.detach())
                mon.step(loss=value, inputs=xb, targets=yb)
                if not math.isfinite(value):
                    diverged = True
                    break
                tot += value * len(idx)
                correct += int((out.argmax(1) == yb).sum())
                count += len(idx)
            model.eval()
            with torch.no_grad():
                vo = model(xvt)
                vl = float(loss_fn(vo, yvt))
                va = float((vo.argmax(1) == yvt).float().mean())
            row = {"epoch": epoch, "accuracy": correct / max(count, 1),
                   "loss": tot / max(count, 1) if count else float("nan"),
                   "lr": opt.param_groups[0]["lr"], "val_accuracy": va, "val_loss": vl}
            rows.append(row)
            mon.epoch(loss=row["loss"], accuracy=row["accuracy"], val_loss=vl, val_accuracy=va)
            if sched is not None:
                sched.step(va)  # the mistake: min mode on an accuracy
            if diverged:
                break
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    result = {"task": task_name, "fault": fault.name, "seed": seed, "jsonl": str(jsonl),
              "csv": str(csv_path), "val_accuracy": rows[-1]["val_accuracy"]}
    (Path(out_dir) / f"{tag}.json").write_text(json.dumps(result))
    return result


def train_runs(seeds: tuple[int, ...], faults: Any = FAULTS) -> tuple[list[dict[str, Any]], float]:
    """Train every (task, fault, seed) into CACHE; the results and the training seconds."""
    CACHE.mkdir(parents=True, exist_ok=True)
    jobs = [(t, f, s, str(CACHE)) for t in TASKS for f in faults for s in seeds]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(run_one, jobs))
    train_s = time.perf_counter() - t0
    (CACHE / f"train_{'-'.join(map(str, seeds))}.json").write_text(
        json.dumps({"seconds": train_s, "runs": len(results)}))
    return results, train_s


def cached_runs(seeds: tuple[int, ...], faults: Any = FAULTS) -> tuple[list[dict[str, Any]], float]:
    """The results :func:`train_runs` left in CACHE (no training); the seconds it took then."""
    results = []
    for t in TASKS:
        for f in faults:
            for s in seeds:
                path = CACHE / f"{t}_{f.name}_{s}.json"
                if not path.exists():
                    sys.exit(f"{path} is missing: train first (without --rediagnose)")
                r = json.loads(path.read_text())
                r.update(jsonl=str(CACHE / Path(r["jsonl"]).name),
                         csv=str(CACHE / Path(r["csv"]).name))
                results.append(r)
    meta = CACHE / f"train_{'-'.join(map(str, seeds))}.json"
    train_s = json.loads(meta.read_text())["seconds"] if meta.exists() else math.nan
    return results, train_s


def classify(diagnosis: Any, classes: set[str]) -> str:
    for f in diagnosis.findings:
        if f.severity != "info" and f.code in classes:
            return f.code
    return "healthy"


def detected(diagnosis: Any, fault: Fault) -> bool:
    codes = {f.code for f in diagnosis.findings if f.severity != "info"}
    if fault.expected == "healthy":
        return not codes
    return bool(codes & {fault.expected, *fault.accepted})


def evaluate(results: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    import lrdoctor.doctor as D
    from lrdoctor.logs import load

    faults = {f.name: f for f in FAULTS}
    classes = {f.expected for f in FAULTS}
    out = []
    for r in results:
        fault = faults[r["fault"]]
        log = load(r[kind])
        d = D.diagnose(log)
        pred = classify(d, classes)
        if pred in fault.accepted:
            pred = fault.expected
        hit = detected(d, fault)
        latency = None
        if hit and fault.expected != "healthy":
            first, last = log.first_step, log.last_step
            for frac in FRACTIONS:
                cut = log.until(first + frac * (last - first))
                if len(cut) and detected(D.diagnose(cut), fault):
                    latency = frac
                    break
        out.append({**r, "expected": fault.expected, "pred": pred, "hit": hit,
                    "latency": latency, "codes": [f.code for f in d.findings
                                                  if f.severity != "info"]})
    return summarize(out, kind)


def summarize(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    labels = sorted({r["expected"] for r in rows})
    conf = Counter((r["expected"], r["pred"] if r["pred"] in labels else "other") for r in rows)
    per_class = []
    f1s = []
    for c in labels:
        tp = conf[(c, c)]
        fp = sum(v for (t, p), v in conf.items() if p == c and t != c)
        fn = sum(v for (t, p), v in conf.items() if t == c and p != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        f1s.append(f1)
        lat = [r["latency"] for r in rows if r["expected"] == c and r["latency"] is not None]
        det = sum(r["hit"] for r in rows if r["expected"] == c)
        n = sum(r["expected"] == c for r in rows)
        per_class.append([c, n, det, round(prec, 3), round(rec, 3), round(f1, 3),
                          round(float(np.median(lat)), 2) if lat else "-"])
    healthy = [r for r in rows if r["expected"] == "healthy"]
    false_alarms = [r for r in healthy if r["codes"]]
    lats = [r["latency"] for r in rows if r["latency"] is not None]
    return {"kind": kind, "rows": rows, "labels": labels, "conf": conf, "per_class": per_class,
            "macro_f1": float(np.mean(f1s)), "false_alarms": false_alarms, "n_healthy": len(healthy),
            "latency_median": float(np.median(lats)) if lats else math.nan,
            "latency_le_30": (sum(x <= 0.3 for x in lats) / len(lats)) if lats else math.nan}


def p3(quick: bool, rediagnose: bool = False) -> None:
    from _results import record

    seeds = (0,) if quick else REPORT_SEEDS
    results, train_s = cached_runs(seeds) if rediagnose else train_runs(seeds)
    trained = (f"Re-diagnosed the cached logs of {len(results)} runs (python benchmarks/"
               f"bench_doctor.py p3 --rediagnose; training them took {train_s:.0f} s)."
               if rediagnose else f"Training {len(results)} runs took {train_s:.0f} s.")
    report = results
    for kind, label in (("jsonl", "live Monitor logs"), ("csv", "Keras-CSVLogger columns only")):
        s = evaluate(report, kind)
        seeds_txt = ", ".join(map(str, sorted({r["seed"] for r in report})))
        record(f"P3 doctor fault injection ({label}; seeds {seeds_txt})",
               ["expected", "runs", "detected", "precision", "recall", "F1", "median latency"],
               s["per_class"],
               notes=(f"macro-F1 {s['macro_f1']:.3f} (goal >= 0.9); false alarms on healthy runs: "
                      f"{len(s['false_alarms'])} of {s['n_healthy']} (goal 0)"
                      + ("" if not s["false_alarms"] else " — " + "; ".join(
                          f"{r['task']}/{r['fault']}/seed {r['seed']}: {', '.join(r['codes'])}"
                          for r in s["false_alarms"][:6]))
                      + f"; median detection latency {s['latency_median']:.0%} of the run, "
                      f"{s['latency_le_30']:.0%} of detections by 30% (goal <= 30%). "
                      f"{trained}\n\n"
                      + confusion_md(s) + "\n\n" + misses_md(s)))


def confusion_md(s: dict[str, Any]) -> str:
    labels = s["labels"]
    cols = labels + ["other"]
    short = {c: c[:14] for c in cols}
    lines = ["Confusion matrix (rows: injected fault's code, columns: predicted top finding):", "",
             "| expected \\ predicted | " + " | ".join(short[c] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for t in labels:
        lines.append(f"| {t} | " + " | ".join(str(s["conf"].get((t, p), 0) or "")
                                             for p in cols) + " |")
    return "\n".join(lines)


def misses_md(s: dict[str, Any]) -> str:
    miss = [r for r in s["rows"] if not r["hit"]]
    if not miss:
        return "Every injected fault was named."
    lines = ["Missed or wrong (task/fault/seed: findings of warning or worse):", ""]
    for r in miss:
        lines.append(f"- {r['task']}/{r['fault']}/seed {r['seed']}: "
                     f"{', '.join(r['codes']) or 'nothing'}")
    return "\n".join(lines)


def tune(rediagnose: bool = False) -> None:
    """TUNE_SEEDS (or SEEDS=0,1), printed per run (not recorded): what thresholds are tuned on."""
    names = os.environ.get("FAULTS", "")
    seeds = tuple(int(x) for x in os.environ.get("SEEDS", ",".join(map(str, TUNE_SEEDS))).split(","))
    if set(seeds) & set(REPORT_SEEDS):
        sys.exit(f"--tune on report seeds {REPORT_SEEDS} would tune on what is reported")
    faults = [f for f in FAULTS if not names or f.name in names.split(",")]
    results, _ = cached_runs(seeds, faults) if rediagnose else train_runs(seeds, faults)
    for kind in ("jsonl", "csv"):
        s = evaluate(results, kind)
        print(f"== {kind}: macro-F1 {s['macro_f1']:.3f}, false alarms {len(s['false_alarms'])}")
        for r in s["rows"]:
            mark = "ok " if r["hit"] else "MISS"
            print(f"{mark} {r['task']:13s} {r['fault']:24s} lat={r['latency']} "
                  f"acc={r['val_accuracy']:.2f} -> {', '.join(r['codes']) or '-'}")


# ----------------------------------------------------------------------------- the corpus
def _options(argv: list[str]) -> Any:
    import argparse

    ap = argparse.ArgumentParser(prog="bench_doctor.py", description=__doc__.split("\n")[0])
    ap.add_argument("parts", nargs="*",
                    help="p3, lofo (default: lofo; P4 and P6 are bench_monitor.py, bench_logs.py)")
    ap.add_argument("--corpus", action="store_true", help="print the corpus runs (with --explain)")
    ap.add_argument("--explain", action="store_true")
    ap.add_argument("--misses", action="store_true", help="with --explain: only missed runs")
    ap.add_argument("--rediagnose", action="store_true", help="use cached logs; train nothing")
    ap.add_argument("--family", action="append", default=[])
    ap.add_argument("--fault", action="append", default=[])
    ap.add_argument("--seed", action="append", default=[])
    ap.add_argument("--no-search", action="store_true", help="lofo: shipped defaults only")
    ap.add_argument("--dry", action="store_true", help="lofo: print, do not append to RESULTS.md")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tune", action="store_true")
    return ap.parse_args(argv)


#: Families the doctor's rules were designed on while this corpus existed (helper 7b's commits
#: 8c8e3dd and edc794d, 2026-12-07, name them): their thresholds are still held out by LOFO, but
#: their rules were not, so the table also pools the other families alone.
DESIGN_FAMILIES = ("cancer-mlp", "mnist1d-cnn", "friedman-reg", "digits-wide", "charlm-tf")


def _split(values: list[str]) -> list[str]:
    return [v for arg in values for v in arg.split(",") if v]


def corpus_pairs(opts: Any) -> list[Any]:
    """The selected corpus runs with their results (trained first unless --rediagnose)."""
    import _corpus as C

    fams = _split(opts.family) or None
    faults = _split(opts.fault) or None
    if faults is not None:
        known = {f.name for f in C.FAULTS} | {"healthy"}
        bad = sorted(set(faults) - known)
        if bad:
            sys.exit(f"error: unknown --fault {bad}; known: {', '.join(sorted(known))}")
    if fams is not None:
        bad = sorted(set(fams) - set(C.FAMILIES))
        if bad:
            sys.exit(f"error: unknown --family {bad}; known: {', '.join(C.FAMILIES)}")
    seeds = tuple(int(x) for x in _split(opts.seed)) or C.SEEDS
    runs = C.corpus(fams, seeds, faults)
    if opts.rediagnose:
        missing = [r for r in runs if C.cached(r.config) is None]
        if missing:
            sys.exit(f"error: {len(missing)} of {len(runs)} runs are not in {C.CACHE} (e.g. "
                     f"{missing[0].family}/{missing[0].fault}/{missing[0].variant}/seed "
                     f"{missing[0].seed}); run without --rediagnose to train them")
        return [(r, C.cached(r.config)) for r in runs]
    pairs, seconds = C.run_all(runs)
    print(f"corpus: {len(pairs)} runs ({seconds:.0f} s training this time)", flush=True)
    return pairs


def _bites_of(pairs: list[Any]) -> dict[str, bool]:
    """Result key -> whether the injected fault shows (reference: the whole corpus cache)."""
    import _corpus as C

    refs = C.references(pairs)
    missing = sorted({r.family for r, _ in pairs} - set(refs))
    if missing:  # the selection has no healthy constant-LR runs of these families
        extra = [(r, C.cached(r.config)) for r in C.corpus(missing, C.SEEDS, ["healthy"])
                 if r.variant == "constant"]
        refs.update(C.references([(r, res) for r, res in extra if res is not None]))
    return {res.key: (C.bites(r, res, refs[r.family]) if r.family in refs else False)
            for r, res in pairs}


def explain(opts: Any) -> None:
    """Per run: expected code, findings live and from the CSV, ok/MISS (shipped defaults)."""
    import _lofo as L

    pairs = corpus_pairs(opts)
    diag = L.Diagnoser(pairs)
    classes = {r.expected for r, _ in pairs} | {r.expected for r in _all_classes()}
    bites = _bites_of(pairs)
    rows = {k: L.rows_for(diag, pairs, k, diag.defaults, classes) for k in L.KINDS}
    diag.save()
    for live, csv_row in zip(rows["jsonl"], rows["csv"], strict=True):
        run = live["run"]
        ok = [row["pred"] == run.expected for row in (live, csv_row)]
        if opts.misses and all(ok):
            continue
        acc = f" (or {', '.join(run.accepted)})" if run.accepted else ""
        print(f"{run.family}/{run.fault}/{run.variant}/seed {run.seed} "
              f"[{'bites' if bites[live['result'].key] else 'does not bite'}; "
              f"metric {live['result'].metric:.3g}] expected {run.expected}{acc}")
        for tag, row, hit in (("live", live, ok[0]), ("csv ", csv_row, ok[1])):
            top = "top-1 ok" if row["top1"] else "top-1 wrong"
            print(f"    {tag} {'ok  ' if hit else 'MISS'} {top:11s} -> "
                  f"{', '.join(row['codes']) or 'nothing'}")
    for k, label in (("jsonl", "live"), ("csv", "csv")):
        s = L.score(rows[k])
        print(f"{label}: macro-F1 {s['macro_f1']:.3f}, top-1 {s['top1']:.3f}, false alarms "
              f"{s['false_alarms']}/{s['healthy']} over {s['runs']} runs")


def _all_classes() -> list[Any]:
    import _corpus as C

    return C.corpus(seeds=(0,))


def _f(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def lofo_part(opts: Any) -> None:
    """The leave-one-family-out table (module docstring), recorded to RESULTS.md."""
    import _corpus as C
    import _lofo as L
    from _results import record

    pairs = corpus_pairs(opts)
    families = [f for f in C.FAMILIES if any(r.family == f for r, _ in pairs)]
    t0 = time.perf_counter()
    out = L.lofo(pairs, families, search=not opts.no_search,
                 progress=lambda m: print(m, flush=True))
    groups, evidence = L.lookalike_groups(pairs)
    bites = _bites_of(pairs)
    folds = out["folds"]
    pooled = {k: [r for f in folds.values() for r in f["rows"][k]] for k in L.KINDS}
    pooled_def = {k: [r for f in folds.values() for r in f["default_rows"][k]] for k in L.KINDS}

    def line(name: str, rows: dict[str, list[Any]], changed: str) -> list[Any]:
        live, cv = L.score(rows["jsonl"]), L.score(rows["csv"], groups)
        return [name, live["runs"], _f(live["macro_f1"]), _f(live["top1"]), _f(cv["macro_f1"]),
                _f(cv["top1"]), _f(cv["group_f1"]), f"{live['false_alarms']}/{live['healthy']}",
                f"{cv['false_alarms']}/{cv['healthy']}", changed]

    table = [line(f, folds[f]["rows"], str(len(folds[f]["changed"]))) for f in families]
    table.append(line("overall (held-out, pooled)", pooled, "-"))
    unseen = [f for f in families if f not in DESIGN_FAMILIES]
    if unseen and len(unseen) < len(families):
        table.append(line(f"overall, the {len(unseen)} families no rule was designed on",
                          {k: [r for f in unseen for r in folds[f]["rows"][k]] for k in L.KINDS},
                          "-"))
    fresh = [f for f in families if f in C.FRESH]
    if fresh and len(fresh) < len(families):
        table.append(line(f"overall, the {len(fresh)} fresh families (added after every rule)",
                          {k: [r for f in fresh for r in folds[f]["rows"][k]] for k in L.KINDS},
                          "-"))
    table.append(line("overall, shipped defaults", pooled_def, "0"))
    bite_rows = {k: [r for r in pooled[k] if r["expected"] == "healthy"
                     or bites[r["result"].key]] for k in L.KINDS}
    bl, bc = L.score(bite_rows["jsonl"]), L.score(bite_rows["csv"], groups)
    seeds = sorted({r.seed for r, _ in pairs})
    picked = "; ".join(f"{f}: " + (", ".join(f"{n}={v:g}" for n, v in sorted(d["changed"].items()))
                                   or "defaults") for f, d in folds.items())
    group_txt = "; ".join(sorted({g for g in groups.values() if "|" in g})) or "none"
    ev_txt = "; ".join(f"{a}~{b} {h}/{n}" for a, b, h, n in evidence if h / n >= 0.5) or "none"
    notes = (
        f"Doctor: {_doctor_version()}. "
        f"Held out: each row's family; rules were designed looking at "
        f"{', '.join(DESIGN_FAMILIES)} (so for them only the threshold values are held out; the "
        f"'no rule was designed on' row pools the others; the fresh families "
        f"{', '.join(C.FRESH)} were added to the corpus after every rule and threshold default "
        f"was written, and nobody looked at their runs one by one); its thresholds were chosen by coordinate ascent of "
        f"mean(live, CSV) macro-F1 on the other {len(families) - 1} families' runs, never adding a "
        f"false alarm on their healthy runs (train "
        f"objective per fold in the progress lines), from the shipped defaults, which were set "
        f"on the older P3 tasks digits-mlp and mnist1d-conv (the digits-* and mnist1d-* families "
        f"share those data sets, with other models, faults and seeds). "
        f"{'Search: ' + str(out['diagnosed']) + ' diagnoses, ' if not opts.no_search else 'No search (shipped defaults). '}"
        f"{out['seconds']:.0f} s. Runs: {len(pairs)} (seeds {', '.join(map(str, seeds))}); a "
        f"prediction counts when the first warning/critical finding that is a corpus class is "
        f"the expected code or an accepted one; top-1 counts the first warning/critical finding "
        f"of any code. Only runs whose fault bites (plus healthy): live macro-F1 "
        f"{_f(bl['macro_f1'])}, top-1 {_f(bl['top1'])}; CSV macro-F1 {_f(bc['macro_f1'])}, "
        f"group {_f(bc['group_f1'])} ({sum(bites.values())} of "
        f"{sum(r.expected != 'healthy' for r, _ in pairs)} faulty runs bite).\n\n"
        f"Thresholds LOFO picked (changed from the defaults) per held-out family: {picked}.\n\n"
        f"{L.GROUP_RULE}. For comparison, the corpus-derived look-alike groups (columns-group "
        f"F1 {_f(L.score(pooled['csv'], groups)['columns_group_f1'])}): {group_txt}. Evidence: "
        f"classes A~B whose per-epoch "
        f"columns agree epoch by epoch (2% on losses, 1 point on accuracies, same LR shape) in "
        f"at least half of the (family, seed) cells that hold both: {ev_txt}.\n\n"
        + _false_alarm_md(pooled) + "\n\n" + _per_fault_md(pooled, bites))
    emit = _print_only if opts.dry else record
    emit("Doctor, leave-one-family-out on the fault corpus (held-out figures)",
           ["held-out family", "runs", "live macro-F1", "live top-1", "CSV macro-F1",
            "CSV top-1", "CSV group-F1", "live false alarms", "CSV false alarms",
            "thresholds changed"], table, notes=notes)
    print(f"lofo: {time.perf_counter() - t0:.0f} s", flush=True)


def _doctor_version() -> str:
    """The commit and whether the doctor's sources differ from it (and the diagnosis hash)."""
    import subprocess

    import _lofo as L

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src/lrdoctor/doctor",
                                "src/lrdoctor/logs"], cwd=root, check=True, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"sources {L.doctor_hash()}"
    return (f"commit {head}" + (" with uncommitted doctor/logs changes" if dirty else "")
            + f", sources {L.doctor_hash()}")


def _print_only(title: str, headers: list[str], rows: list[list[Any]], notes: str = "") -> None:
    """What ``record`` prints, without appending to RESULTS.md (``--dry``)."""
    print(f"## {title}\n\n| " + " | ".join(headers) + " |")
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")
    print("\n" + notes)


def _false_alarm_md(pooled: dict[str, list[Any]]) -> str:
    import _corpus as C

    cells: dict[tuple[str, str], list[int]] = {}
    for kind_i, k in enumerate(("jsonl", "csv")):
        for r in pooled[k]:
            if r["expected"] != "healthy":
                continue
            c = cells.setdefault((r["run"].family, r["run"].variant), [0, 0, 0])
            c[kind_i] += bool(r["codes"])
            if kind_i == 0:
                c[2] += 1
    fams = sorted({f for f, _ in cells}, key=list(C.FAMILIES).index)
    lines = ["False alarms on healthy runs (held-out thresholds), live/CSV of n seeds, by LR style:",
             "", "| family | " + " | ".join(C.LR_STYLES) + " |", "|---|" + "---|" * len(C.LR_STYLES)]
    for f in fams:
        lines.append(f"| {f} | " + " | ".join(
            f"{cells[(f, s)][0]}/{cells[(f, s)][1]} of {cells[(f, s)][2]}" if (f, s) in cells
            else "-" for s in C.LR_STYLES) + " |")
    wrong = [f"{r['run'].family}/{r['run'].variant}/seed {r['run'].seed} ({k}): "
             f"{', '.join(r['codes'])}" for k in ("jsonl", "csv") for r in pooled[k]
             if r["expected"] == "healthy" and r["codes"]]
    if wrong:
        lines += ["", "What they said: " + "; ".join(wrong[:40])
                  + (f"; ... {len(wrong) - 40} more" if len(wrong) > 40 else "")]
    return "\n".join(lines)


def _per_fault_md(pooled: dict[str, list[Any]], bites: dict[str, bool]) -> str:
    import _lofo as L

    faults = sorted({r["expected"] for r in pooled["jsonl"]})
    lines = [("Per expected code (held-out, pooled): runs, runs where the fault bites, recall and "
             "F1 live / CSV, the most common live prediction when wrong:"), "",
             ("| expected | runs | bites | live recall | live F1 | CSV recall | CSV F1 | "
             "live miss -> |"), "|---|---|---|---|---|---|---|---|"]
    f1 = {k: _per_class_f1([(r["expected"], r["pred"]) for r in pooled[k]]) for k in L.KINDS}
    for c in faults:
        rows = {k: [r for r in pooled[k] if r["expected"] == c] for k in L.KINDS}
        n = len(rows["jsonl"])
        b = sum(bites[r["result"].key] for r in rows["jsonl"])
        rec = {k: sum(r["pred"] == c for r in rows[k]) / n for k in L.KINDS}
        wrong = Counter(r["pred"] for r in rows["jsonl"] if r["pred"] != c).most_common(2)
        lines.append(f"| {c} | {n} | {b if c != 'healthy' else '-'} | {rec['jsonl']:.2f} | "
                     f"{f1['jsonl'][c]:.2f} | {rec['csv']:.2f} | {f1['csv'][c]:.2f} | "
                     f"{', '.join(f'{p} {m}' for p, m in wrong) or '-'} |")
    return "\n".join(lines)


def _per_class_f1(pairs: list[tuple[str, str]]) -> dict[str, float]:
    conf = Counter(pairs)
    out = {}
    for c in {t for t, _ in pairs}:
        tp = conf[(c, c)]
        fp = sum(v for (t, p), v in conf.items() if p == c and t != c)
        fn = sum(v for (t, p), v in conf.items() if t == c and p != c)
        out[c] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return out


if __name__ == "__main__":
    opts = _options(sys.argv[1:])
    if opts.tune:
        tune(opts.rediagnose)
        sys.exit(0)
    if opts.corpus:
        if not opts.explain:
            sys.exit("error: --corpus prints runs with --explain; for the table run the lofo part")
        explain(opts)
        sys.exit(0)
    only = opts.parts
    moved = {"p4": "make bench BENCH=monitor", "p6": "make bench BENCH=logs"}
    for part in set(only) & set(moved):
        sys.exit(f"error: {part} moved to its own benchmark: {moved[part]}")
    unknown = sorted(set(only) - {"p3", "lofo"})
    if unknown:
        sys.exit(f"error: unknown part(s) {unknown}; parts: p3, lofo")
    if "p3" in only:
        p3(opts.quick, opts.rediagnose)
    if not only or "lofo" in only:
        lofo_part(opts)
