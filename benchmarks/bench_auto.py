"""Benchmark P2: ``auto_lr``'s LR + schedule against the LR-free optimizers and a grid oracle.

Two parts, on different task families (``_p2_families.py``):

- ``tune`` (``make bench BENCH=auto-tune``): on the **tuning** families only (the bundled
  examples digits-mlp, digits-cnn, mnist1d-conv with AdamW), train every recipe in
  ``lrdoctor.finder._recipe.RECIPES`` (cosine, one-cycle, WSD, linear-to-zero) at peak =
  the finder's suggestion x each factor in ``FACTORS``; the regret of each (recipe, factor) is
  its 3-seed mean's gap to the best candidate of the family. The lowest mean regret picks
  ``AUTO_SCHEDULE`` and ``PEAK_FACTOR`` (set by hand in ``_recipe.py`` from this table).
- main (``make bench BENCH=auto``): on the **held-out** families, which played no part in any
  choice (a GRU, an LSTM, a small transformer, a CNN with BatchNorm, a tabular MLP, a residual
  MLP with LayerNorm, softmax regression, and two MSE regressions), at equal epochs and the
  same seeds (0, 1, 2), with AdamW (weight decay 0.01) unless named:

  - ``auto``: ``lrdoctor.torch.auto_lr(..., total_steps=<the run>)`` from the run's own model,
    then its spec through ``ScheduledLR``;
  - ``adamw 1e-3``: AdamW at 1e-3, constant; ``adamw 1e-3 cosine``: 5% warm-up + cosine to 0;
  - ``schedule-free``: ``schedulefree.AdamWScheduleFree`` (its default lr 0.0025, warm-up 5% of
    the run; ``.train()``/``.eval()`` around training and evaluation, BatchNorm statistics
    recomputed at the evaluation point);
  - ``prodigy``: ``prodigyopt.Prodigy(lr=1)``, ``d-adapt adam``: ``dadaptation.DAdaptAdam(lr=1)``,
    both constant (their documented use; weight decay 0.01 like AdamW);
  - ``oracle``: the best 3-seed mean over 7 peak LRs (1e-4 .. 1e-1, half a decade apart) of the
    same recipe ``auto`` writes.

  Regret to the oracle: accuracy points for classifiers; for regressions, the relative gap of
  the validation MSE in percent (``100 * (mse - oracle) / oracle``). The finder's cost is its
  optimizer steps (every pass) over the run's steps.

Every training run is ~2000 steps of a small model on one thread (``torch.set_num_threads(1)``
in each worker), seconds each. Scores are cached in ``out/bench_auto_cache.json``, keyed by
family, epochs, arm (with its exact spec), seed and a hash of ``_p2_families.py``, the CPU model
and the torch version; finder results by a hash of the finder's sources too. Delete the file for
a cold run. ``LRDOCTOR_BENCH_WORKERS`` (default 2) processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _p2_families as pf
from _results import cpu, record

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out"
CACHE = OUT / "bench_auto_cache.json"
SEEDS = (0, 1, 2)
GRID = tuple(float(f"{v:.4g}") for v in 10 ** np.arange(-4.0, -0.99, 0.5))
FACTORS = (1.0, 2.0)
WORKERS = int(os.environ.get("LRDOCTOR_BENCH_WORKERS", "2"))
PLOT = Path(__file__).with_name("p2_auto.png")


def _hash(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    h.update(f"{cpu()}|{torch.__version__}|{extra}".encode())
    return h.hexdigest()[:12]


TRAIN_CODE = _hash([Path(pf.__file__)])
FINDER_CODE = _hash([Path(pf.__file__), *sorted((ROOT / "src/lrdoctor/finder").glob("_*.py")),
                     ROOT / "src/lrdoctor/torch/_finder.py", ROOT / "src/lrdoctor/torch/_auto.py"])
_cache: dict[str, object] = json.loads(CACHE.read_text()) if CACHE.exists() else {}
_counts = {"new": 0, "reused": 0}


def _save() -> None:
    OUT.mkdir(exist_ok=True)
    try:
        disk = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    except ValueError:
        disk = {}
    disk.update(_cache)
    _cache.update(disk)
    tmp = CACHE.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_cache))
    os.replace(tmp, CACHE)


# ---- jobs (run in worker processes) -----------------------------------------------------------


def _family(which: str, name: str) -> pf.Family:
    return pf.families(which)[name]


def _optimizer(arm: dict, total: int):
    kind = arm["opt"]
    if kind == "adamw":
        return lambda p: torch.optim.AdamW(p, lr=arm["lr"], weight_decay=0.01)
    if kind == "schedulefree":
        import schedulefree

        return lambda p: schedulefree.AdamWScheduleFree(
            p, lr=0.0025, warmup_steps=max(1, round(0.05 * total)), weight_decay=0.01)
    if kind == "prodigy":
        from prodigyopt import Prodigy

        return lambda p: Prodigy(p, lr=1.0, weight_decay=0.01)
    if kind == "dadapt":
        from dadaptation import DAdaptAdam

        return lambda p: DAdaptAdam(p, lr=1.0, weight_decay=0.01, decouple=True)
    raise ValueError(kind)


def job_train(which: str, name: str, seed: int, arm: dict) -> float:
    torch.set_num_threads(1)
    fam = _family(which, name)
    return pf.train_run(fam, seed, _optimizer(arm, fam.total_steps()), schedule=arm.get("spec"),
                        schedule_free=arm["opt"] == "schedulefree")


def job_finder(which: str, name: str, seed: int) -> dict:
    """auto_lr on the run's own model (seed), AdamW: the finder's answer and its cost."""
    torch.set_num_threads(1)
    from lrdoctor.torch import auto_lr

    fam = _family(which, name)
    model = fam.build(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    t0 = time.perf_counter()
    res = auto_lr(model, opt, fam.loader(seed), fam.loss_fn(), total_steps=fam.total_steps())
    return {"suggestion": res.suggestion, "grade": res.grade, "reason": res.reason,
            "min_loss_lr": res.min_loss_lr, "steps_run": res.settings["steps_run"],
            "passes": [p["kind"] for p in res.settings["passes"]], "cost": res.cost,
            "seconds": time.perf_counter() - t0}


def _key(*parts: object) -> str:
    return "|".join(str(p) for p in parts)


def run_jobs(jobs: dict[str, tuple]) -> None:
    """Run the (cache key -> job args) not cached yet; ``args[0]`` is the job's function name."""
    todo = {k: a for k, a in jobs.items() if k not in _cache}
    _counts["reused"] += len(jobs) - len(todo)
    _counts["new"] += len(todo)
    if not todo:
        return
    fns = {"train": job_train, "finder": job_finder}
    with ProcessPoolExecutor(max_workers=max(1, WORKERS)) as pool:
        futures = {k: pool.submit(fns[a[0]], *a[1:]) for k, a in todo.items()}
        for k, f in futures.items():
            _cache[k] = f.result()
            _save()


def finder_results(which: str, fams: dict[str, pf.Family]) -> dict[tuple[str, int], dict]:
    keys = {(n, s): _key("finder", FINDER_CODE, which, n, f.epochs, s)
            for n, f in fams.items() for s in SEEDS}
    run_jobs({k: ("finder", which, n, s) for (n, s), k in keys.items()})
    return {ns: _cache[k] for ns, k in keys.items()}  # type: ignore[misc]


def scores(which: str, fam: pf.Family, arms: dict[str, dict[int, dict]]) -> dict[str, list]:
    """``arms[label][seed]`` -> the arm's scores over SEEDS (trained where not cached)."""
    keys = {(label, s): _key("train", TRAIN_CODE, which, fam.name, fam.epochs,
                             json.dumps(arm, sort_keys=True), s)
            for label, per_seed in arms.items() for s, arm in per_seed.items()}
    run_jobs({k: ("train", which, fam.name, s, arms[label][s]) for (label, s), k in keys.items()})
    return {label: [float(_cache[keys[(label, s)]]) for s in SEEDS] for label in arms}


def regret(fam: pf.Family, value: float, best: float) -> float:
    """pp of accuracy below ``best``, or % of val MSE above it."""
    if fam.kind == "classification":
        return best - value
    return 100.0 * (value - best) / best


# ---- tune: choose the recipe and the peak factor on the tuning families -------------------------


def tune() -> None:
    from lrdoctor.finder._recipe import RECIPES, recipe_spec

    started = time.perf_counter()
    fams = pf.families("tuning")
    found = finder_results("tuning", fams)
    table: dict[tuple[str, float], list[float]] = {}
    per_family: dict[str, dict[tuple[str, float], float]] = {}
    for name, fam in fams.items():
        total = fam.total_steps()
        arms = {f"{kind} x{factor:g}": {
            s: {"opt": "adamw", "lr": 1e-3,
                "spec": recipe_spec(kind, found[(name, s)]["suggestion"] * factor, total)}
            for s in SEEDS} for kind in RECIPES for factor in FACTORS}
        got = scores("tuning", fam, arms)
        means = {label: float(np.mean(v)) for label, v in got.items()}
        best = max(means.values()) if fam.higher_is_better else min(means.values())
        per_family[name] = {}
        for kind in RECIPES:
            for factor in FACTORS:
                r = regret(fam, means[f"{kind} x{factor:g}"], best)
                table.setdefault((kind, factor), []).append(r)
                per_family[name][(kind, factor)] = r
        print(f"{name}: " + ", ".join(f"{k}: {v:.4g}" for k, v in means.items()), flush=True)
    rows = [[kind, factor, float(np.mean(v)), float(np.max(v)),
             *[per_family[n][(kind, factor)] for n in fams]]
            for (kind, factor), v in table.items()]
    rows.sort(key=lambda r: r[2])
    costs = [v["cost"] for v in found.values()]
    notes = (f"Tuning families only: {pf.TUNING}; ~2000-step runs; seeds {list(SEEDS)}. Peak = "
             f"auto_lr's finder suggestion (sized to 10% of the run) x factor; 5% linear warm-up "
             f"(one_cycle: its own 30%). Regret: pp below the best (recipe, factor) of the "
             f"family, 3-seed means. Finder cost {np.mean(costs):.3f} of a run (max "
             f"{np.max(costs):.3f}). Best: {rows[0][0]} x{rows[0][1]:g}. Training runs: "
             f"{_counts['new']} new, {_counts['reused']} reused. 1 thread per run, "
             f"{WORKERS} workers. Wall {time.perf_counter() - started:.0f}s.")
    record("auto recipe choice (P2 tuning families)",
           ["recipe", "peak factor", "mean regret pp", "worst pp", *fams], rows, notes)


# ---- main: held-out families ------------------------------------------------------------------


ARMS = ("auto", "adamw 1e-3", "adamw 1e-3 cosine", "schedule-free", "prodigy", "d-adapt adam")


def main() -> None:
    from lrdoctor.finder._recipe import AUTO_SCHEDULE, PEAK_FACTOR, recipe_spec

    started = time.perf_counter()
    every_family = pf.families("held-out")
    wanted = [n for n in os.environ.get("LRDOCTOR_P2_FAMILIES", "").split(",") if n]
    # the recurrent ones first (the finder's hard case), then the cheap MLPs, so that a run cut
    # short (a loaded machine) has covered as many families as it could
    order = ["gru-first", "lstm-majority", "tabular-mlp", "friedman-mse", "logreg-tabular",
             "waves-tanh-mse", "resmlp-ln", "cnn-bn-shapes", "transformer-order"]
    every_family = {n: every_family[n] for n in sorted(every_family, key=order.index)}
    fams = {n: f for n, f in every_family.items() if not wanted or n in wanted}
    left_out = [n for n in every_family if n not in fams]
    found = finder_results("held-out", fams)
    regrets: dict[str, dict[str, float]] = {a: {} for a in ARMS}
    raw: dict[str, dict] = {}
    for name, fam in fams.items():
        total = fam.total_steps()
        w = max(1, round(0.05 * total))

        def every(arm: dict) -> dict[int, dict]:
            return dict.fromkeys(SEEDS, arm)

        arms: dict[str, dict[int, dict]] = {
            "auto": {s: {"opt": "adamw", "lr": 1e-3, "spec": recipe_spec(
                AUTO_SCHEDULE, found[(name, s)]["suggestion"] *
                (1.0 if found[(name, s)]["grade"] == "fallback" else PEAK_FACTOR), total)}
                for s in SEEDS},
            "adamw 1e-3": every({"opt": "adamw", "lr": 1e-3}),
            "adamw 1e-3 cosine": every({"opt": "adamw", "lr": 1e-3,
                                        "spec": f"warmup({w}) >> cosine(0.001, end=0, "
                                                f"steps={total - w})"}),
            "schedule-free": every({"opt": "schedulefree"}),
            "prodigy": every({"opt": "prodigy"}),
            "d-adapt adam": every({"opt": "dadapt"}),
        }
        for lr in GRID:
            arms[f"grid {lr:g}"] = every({"opt": "adamw", "lr": 1e-3,
                                          "spec": recipe_spec(AUTO_SCHEDULE, lr, total)})
        got = scores("held-out", fam, arms)
        means = {label: float(np.mean(v)) for label, v in got.items()}
        grid = {lr: means[f"grid {lr:g}"] for lr in GRID}
        pick = max if fam.higher_is_better else min
        oracle_lr = pick(grid, key=grid.get)
        oracle = grid[oracle_lr]
        for a in ARMS:
            regrets[a][name] = regret(fam, means[a], oracle)
        raw[name] = {"oracle_lr": oracle_lr, "oracle": oracle, "grid": grid, "means": means,
                     "scores": got, "finder": [found[(name, s)] for s in SEEDS],
                     "kind": fam.kind, "total_steps": total}
        print(f"{name}: oracle {oracle:.4g} at {oracle_lr:g}; " +
              ", ".join(f"{a} {regrets[a][name]:+.3g}" for a in ARMS), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_auto.json").write_text(json.dumps(raw, default=float, indent=1))
    names = list(fams)
    cls = [n for n in names if fams[n].kind == "classification"]
    reg = [n for n in names if fams[n].kind == "regression"]
    costs = [f["cost"] for v in raw.values() for f in v["finder"]]
    rows = []
    for a in ARMS:
        r = regrets[a]
        wins = sum(r[n] < regrets[b][n] for n in names for b in ARMS[3:]) if a == "auto" else ""
        rows.append([a, float(np.mean([r[n] for n in names])), float(np.mean([r[n] for n in cls])),
                     float(np.max([r[n] for n in cls])), float(np.mean([r[n] for n in reg])),
                     float(np.max([r[n] for n in reg])), wins])
    auto_beats = {b: sum(regrets["auto"][n] < regrets[b][n] for n in names) for b in ARMS[3:]}
    mean_auto = rows[0][1]
    met = mean_auto <= 0.5 and all(mean_auto < row[1] for row in rows[3:]) and \
        float(np.mean(costs)) <= 0.10
    grades = [f["grade"] for v in raw.values() for f in v["finder"]]
    passes = [",".join(f["passes"]) for v in raw.values() for f in v["finder"]]
    notes = (
        f"Held-out families (no rule of auto was chosen on them): "
        f"{'; '.join(f'{n} ({fams[n].describe})' for n in names)}. Tuning families (the recipe "
        f"and factor were chosen there, `make bench BENCH=auto-tune`): {pf.TUNING}. "
        f"Recipe: {AUTO_SCHEDULE}, peak = suggestion x {PEAK_FACTOR:g}, 5% warm-up. "
        f"~2000-step runs, seeds {list(SEEDS)}, AdamW wd 0.01 unless named. Oracle: best 3-seed "
        f"mean over peaks {', '.join(f'{v:g}' for v in GRID)} of the same recipe. Regret: "
        f"classification in accuracy pp, regression in % of val MSE above the oracle; 'mean' "
        f"mixes both units over all {len(names)} families. auto beats, in how many of the "
        f"{len(names)} families: " + ", ".join(f"{b} {k}" for b, k in auto_beats.items()) +
        f". Finder cost: mean {np.mean(costs):.3f}, max {np.max(costs):.3f} of a run. Grades: "
        + ", ".join(f"{g} {grades.count(g)}" for g in sorted(set(grades))) +
        "; passes: " + ", ".join(f"{p} {passes.count(p)}" for p in sorted(set(passes))) +
        f". No None suggestion: {all(f['suggestion'] is not None for v in raw.values() for f in v['finder'])}. "
        f"Goal (mean <= 0.5, ahead of every LR-free optimizer on the mean, cost <= 10%): "
        f"{'met' if met else 'NOT met'}. Training runs: {_counts['new']} new, "
        f"{_counts['reused']} reused. 1 thread per run, {WORKERS} workers. "
        f"Wall {time.perf_counter() - started:.0f}s. Plot: benchmarks/{PLOT.name}."
        + (f" PARTIAL: families not run this time (LRDOCTOR_P2_FAMILIES): {', '.join(left_out)}."
           if left_out else ""))
    record("auto vs LR-free optimizers (P2, held-out families)",
           ["arm", "mean regret (all)", "classif. mean pp", "classif. worst pp",
            "regression mean %", "regression worst %",
            f"auto ahead of an LR-free arm (of {3 * len(names)})"], rows, notes)
    record("P2 per family (regret to the grid oracle)", ["family", "oracle lr", *ARMS],
           [[n, raw[n]["oracle_lr"], *[regrets[a][n] for a in ARMS]] for n in names],
           "accuracy pp (classifiers) or % of val MSE (regressions); raw in out/bench_auto.json")
    plot(names, regrets)


def plot(names: list[str], regrets: dict[str, dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(ARMS)
    x = np.arange(len(names))
    for i, a in enumerate(ARMS):
        vals = [max(-5.0, min(60.0, regrets[a][n])) for n in names]
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=a)
    ax.set_xticks(x, names, rotation=25, ha="right")
    ax.set_ylabel("regret to the grid oracle\n(pp accuracy; % val MSE for *-mse)")
    ax.set_yscale("symlog", linthresh=1)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title("P2 held-out: auto vs AdamW defaults and LR-free optimizers (clipped at 60)")
    ax.legend(ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if "tune" in sys.argv[1:]:
        tune()
    else:
        main()
