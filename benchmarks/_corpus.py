"""The doctor's fault corpus: runs described by config dicts, faults as config overrides.

A run is one **config dict** whose keys are the repair vocabulary (docs/repair.md) plus the
corpus's own knobs; :data:`DEFAULTS` lists every key with its default, and a key outside it
raises ``lrdoctor.UnsupportedChange`` (a ``KeyError`` where the package does not define it yet):

========================= ======================================================================
key                       meaning
========================= ======================================================================
``family``, ``seed``      the task family (benchmarks/_families.py) and the seed (weights, batch
                          order, label noise)
``optimizer``             ``sgd`` (plain), ``momentum`` (SGD 0.9), ``adam``, ``adamw``,
                          ``rmsprop``; ``None``: the family's
``lr``                    peak learning rate; ``None``: the family's for that optimizer
``lr_style``              ``constant``, ``warmup-cosine``, ``step``, ``one-cycle``,
                          ``plateau-torch`` (torch's ReduceLROnPlateau, stepped per epoch),
                          ``plateau-lrdoctor`` (PlateauLR, watched by the Monitor),
                          ``early-stopping`` (twice the epochs, stop after 2 epochs without a
                          new best validation metric)
``schedule``              a schedule spec string (absolute values) that replaces the style's
``warmup_steps``          linear warm-up steps put in front of the schedule
``weight_decay``          ``None``: the optimizer's default (AdamW 0.01, others 0)
``grad_clip``             global gradient-norm clip, ``None`` for none
``batch_size``, ``epochs`` ``None``: the family's
``init``, ``activation``, ``output_activation``, ``dropout``, ``width``, ``depth``
                          model options (``make_model``)
``normalize_inputs``, ``shuffle``, ``input_scale``, ``label_noise``, ``train_noise``,
``n_train``, ``eval_shift`` data options (``make_data`` / ``make_test``)
``plateau_mode``,         the plateau scheduler's mode (``None``: the right one for the metric)
``plateau_monitor``       and metric (``val_loss``, ``val_accuracy``)
``plateau_factor``,       its factor (0.5) and patience in epochs (1)
``plateau_patience``
``label_smoothing``       cross-entropy label smoothing
========================= ======================================================================

A **fault** (:class:`Fault`) is a finding code with variants, each a function of the family
giving config overrides (e.g. ``lr`` x30 with SGD, ``init="huge"``, ``plateau_mode="min"`` with
``plateau_monitor="val_accuracy"``); ``None`` where the fault does not apply to the family (label
noise on a character LM). :func:`corpus` lists every (fault, variant, family, seed) run plus the
healthy runs (every family with every LR style), as :class:`Run` records.

``train_run(config, out_dir) -> RunResult`` trains one run with the live
``lrdoctor.torch.Monitor`` (per-step JSONL) and writes the per-epoch Keras CSVLogger columns
(``epoch, loss, accuracy, val_loss, val_accuracy, lr``; no accuracy for regression); the test
split's loss/accuracy go to the live log only (``test/loss``, ``test/accuracy``), so the CSV is
what a Keras user has. Deterministic per config on one machine and thread count. Every run is
cached under ``out/corpus/<key>.*`` (gitignored), keyed by a hash of the full config and
:data:`VERSION`; :func:`run_all` trains what is missing in 2 ``nice``d worker processes with 1
torch thread each and prints a progress line.

``bites(result, reference)`` says whether an injected fault really shows (see its docstring);
the benchmark records faults that do not bite instead of relabelling them.

    python benchmarks/_corpus.py            # train the whole corpus into out/corpus (cached)
    python benchmarks/_corpus.py --list     # the runs, without training
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _families import FAMILIES, FRESH, Family, unsupported

__all__ = [
    "CACHE", "DEFAULTS", "FAULTS", "FRESH", "LR_STYLES", "SEEDS", "VERSION", "Fault", "Run", "RunResult",
    "bites", "cached", "config_key", "corpus", "full_config", "run_all", "train_run",
]

VERSION = 2
SEEDS = (0, 1, 2)
CACHE = Path(__file__).resolve().parents[1] / "out" / "corpus"   # gitignored (/out/)
LR_STYLES = ("constant", "warmup-cosine", "step", "one-cycle", "plateau-torch",
             "plateau-lrdoctor", "early-stopping")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop")

DEFAULTS: dict[str, Any] = {
    "family": None, "seed": 0, "optimizer": None, "lr": None, "lr_style": "constant",
    "schedule": None, "warmup_steps": 0, "weight_decay": None, "grad_clip": None,
    "batch_size": None, "epochs": None, "init": "default", "activation": "relu",
    "output_activation": None, "dropout": 0.0, "width": None, "depth": None,
    "normalize_inputs": True, "shuffle": True, "input_scale": 1.0, "label_noise": 0.0,
    "train_noise": 0.0, "n_train": None, "eval_shift": 0.0, "plateau_mode": None,
    "plateau_monitor": "val_loss", "plateau_factor": 0.5, "plateau_patience": 1,
    "label_smoothing": 0.0,
}


def full_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every default filled in and the family's defaults resolved."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise unsupported(unknown[0], f"the corpus's train_run has no knob {unknown[0]!r}; "
                          f"knobs: {', '.join(sorted(DEFAULTS))}")
    c = {**DEFAULTS, **config}
    if c["family"] not in FAMILIES:
        raise KeyError(f"family {c['family']!r} is unknown; choose one of: {', '.join(FAMILIES)}")
    fam = FAMILIES[c["family"]]
    c["optimizer"] = c["optimizer"] or fam.optimizer
    if c["optimizer"] not in OPTIMIZERS:
        raise unsupported("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, "
                          f"got {c['optimizer']!r}")
    if c["lr"] is None:
        c["lr"] = fam.lrs[c["optimizer"]]
    c["batch_size"] = int(c["batch_size"] or fam.batch_size)
    c["epochs"] = int(c["epochs"] or fam.epochs)
    if c["lr_style"] not in LR_STYLES:
        raise unsupported("lr_style", f"must be one of {', '.join(LR_STYLES)}, "
                          f"got {c['lr_style']!r}")
    return c


def config_key(config: dict[str, Any]) -> str:
    """A short hash of the full config (and :data:`VERSION`): the cache key."""
    c = full_config(config)
    text = json.dumps({"v": VERSION, **c}, sort_keys=True, default=str)
    return f"{c['family']}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


# ----------------------------------------------------------------------------- faults
Overrides = Callable[[Family], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Fault:
    """A fault: the finding code that names it, codes that also name its cause, its variants."""

    name: str
    expected: str
    accepted: tuple[str, ...]
    variants: tuple[tuple[str, Overrides], ...]


def _sgd_opt(f: Family) -> str:
    return f.optimizer if f.optimizer in ("sgd", "momentum") else "momentum"


def _adam_opt(f: Family) -> str:
    return f.optimizer if f.optimizer in ("adam", "adamw", "rmsprop") else "adam"


def _lr_x(k: float, opt: Callable[[Family], str]) -> Overrides:
    return lambda f: {"optimizer": opt(f), "lr": f.lrs[opt(f)] * k}


def _steps(f: Family, epochs: int | None = None, batch: int | None = None) -> int:
    from _families import make_data

    n = _N_TRAIN.setdefault(f.name, len(make_data(f.name, 0)[1]))
    return math.ceil(n / (batch or f.batch_size)) * (epochs or f.epochs)


_N_TRAIN: dict[str, int] = {}


def _not_lm(fn: Overrides) -> Overrides:
    return lambda f: None if f.task == "lm" else fn(f)


def _big_wd(strong: bool) -> Overrides:
    def overrides(f: Family) -> dict[str, Any]:
        if f.optimizer == "adamw":  # decoupled: the decay per step is lr * wd
            return {"weight_decay": 30.0 if strong else 10.0}
        return {"weight_decay": 0.3 if strong else 0.05}
    return overrides


def _plateau_wrong(style: str) -> Overrides:
    def overrides(f: Family) -> dict[str, Any]:
        if f.task == "regression":  # no accuracy: a loss watched in mode 'max'
            return {"lr_style": style, "plateau_mode": "max", "plateau_monitor": "val_loss"}
        return {"lr_style": style, "plateau_mode": "min", "plateau_monitor": "val_accuracy"}
    return overrides


def _mismatch(first: bool) -> Overrides:
    def overrides(f: Family) -> dict[str, Any]:
        if f.task == "regression":  # standardised targets, half of them below 0
            return {"output_activation": "sigmoid" if first else "relu"}
        return {"output_activation": "softmax" if first else "sigmoid"}
    return overrides


def _small_data(n: int, factor: int) -> Overrides:
    def overrides(f: Family) -> dict[str, Any]:
        rows = n if f.task != "lm" else n // 2
        return {"n_train": rows, "epochs": f.epochs * factor,
                "width": f.width * (2 if f.name != "digits-wide" else 1)}
    return overrides


FAULTS: tuple[Fault, ...] = (
    Fault("lr-too-high", "lr-too-high", ("diverging", "nonfinite"), (
        ("sgd-x10", _lr_x(10, _sgd_opt)), ("sgd-x30", _lr_x(30, _sgd_opt)))),
    Fault("lr-too-low", "lr-too-low", (), (
        ("x0.01", _lr_x(1e-2, lambda f: f.optimizer)), ("x0.001", _lr_x(1e-3, lambda f: f.optimizer)))),
    Fault("diverging", "diverging", ("lr-too-high", "nonfinite"), (
        ("ramp-x100", lambda f: {"schedule": f"linear({f.lr:g}, end={f.lr * 100:g}, "
                                             f"steps={_steps(f)})"}),
        ("ramp-x1000", lambda f: {"schedule": f"linear({f.lr:g}, end={f.lr * 1000:g}, "
                                              f"steps={_steps(f)})"}))),
    Fault("nonfinite", "nonfinite", ("lr-too-high", "diverging", "exploding-gradients"), (
        ("sgd-x1000", _lr_x(1e3, lambda f: "momentum")),
        ("sgd-x10000", _lr_x(1e4, lambda f: "momentum")))),
    Fault("oscillation", "oscillation", ("lr-too-high",), (
        ("cyclic-x10", lambda f: {"schedule": f"cyclic({f.lr / 10:g}, {f.lr * 10:g}, "
                                              f"half_period={max(5, _steps(f) // 12)})"}),
        ("cyclic-x30", lambda f: {"schedule": f"cyclic({f.lr / 10:g}, {f.lr * 30:g}, "
                                              f"half_period={max(5, _steps(f) // 12)})"}))),
    Fault("exploding-gradients", "exploding-gradients", ("bad-initialization", "nonfinite"), (
        ("init-large", lambda f: {"init": "large"}),
        ("init-large-deeper", lambda f: {"init": "large", "depth": f.depth + 2}))),
    Fault("vanishing-gradients", "vanishing-gradients", ("saturated-activations",), (
        ("init-tiny", lambda f: {"init": "tiny"}),
        ("sigmoid-deeper", lambda f: {"activation": "sigmoid", "depth": f.depth + 2}))),
    Fault("dead-relu", "dead-relu", ("bad-initialization",), (
        ("bias-1", lambda f: {"init": "dead-mild"}), ("bias-3", lambda f: {"init": "dead"}))),
    Fault("saturated-activations", "saturated-activations",
          ("vanishing-gradients", "bad-initialization"), (
        ("tanh-large", lambda f: {"activation": "tanh", "init": "large"}),
        ("sigmoid-large", lambda f: {"activation": "sigmoid", "init": "large"}))),
    Fault("bad-initialization", "bad-initialization",
          ("saturated-activations", "exploding-gradients"), (
        ("normal-3", lambda f: {"init": "huge"}), ("zeros", lambda f: {"init": "zeros"}))),
    Fault("unnormalized-input", "unnormalized-input", (), (
        ("raw", _not_lm(lambda f: {"normalize_inputs": False})),
        ("x255", _not_lm(lambda f: {"input_scale": 255.0})))),
    Fault("unshuffled-data", "unshuffled-data", (), (
        ("sorted", _not_lm(lambda f: {"shuffle": False})),
        ("sorted-bs2x", _not_lm(lambda f: {"shuffle": False, "batch_size": f.batch_size * 2})))),
    Fault("label-noise", "label-noise", (), (
        ("p0.3", _not_lm(lambda f: {"label_noise": 0.3})),
        ("p0.6", _not_lm(lambda f: {"label_noise": 0.6})))),
    Fault("over-regularization", "over-regularization", (), (
        ("wd", _big_wd(False)), ("wd-strong", _big_wd(True)),
        ("dropout-0.8", lambda f: {"dropout": 0.8}))),
    Fault("underfitting", "underfitting", (), (
        ("width-2", lambda f: {"width": 2}), ("width-1-depth-1", lambda f: {"width": 1, "depth": 1}))),
    Fault("overfitting", "overfitting", (), (
        ("n100-x4", _small_data(100, 4)), ("n50-x8", _small_data(50, 8)))),
    Fault("data-problem", "data-problem", (), (
        ("train-noise-2", _not_lm(lambda f: {"train_noise": 2.0})),
        ("train-noise-4", _not_lm(lambda f: {"train_noise": 4.0})))),
    Fault("missing-warmup", "missing-warmup", ("lr-too-high",), (
        ("adam-x10", _lr_x(10, _adam_opt)), ("adam-x30", _lr_x(30, _adam_opt)))),
    Fault("plateau-monitor-mismatch", "plateau-monitor-mismatch", (), (
        ("torch", _plateau_wrong("plateau-torch")),
        ("lrdoctor", _plateau_wrong("plateau-lrdoctor")))),
    Fault("loss-activation-mismatch", "loss-activation-mismatch", (), (
        ("first", _mismatch(True)), ("second", _mismatch(False)))),
    Fault("batch-size", "batch-size", (), (
        ("bs4", lambda f: {"batch_size": 4, "epochs": max(1, f.epochs * 4 // f.batch_size)}),
        ("full-batch", lambda f: {"batch_size": 100_000, "epochs": f.epochs * 8}))),
    Fault("distribution-shift", "distribution-shift", (), (
        ("shift-1", lambda f: {"eval_shift": 0.2 if f.task == "lm" else 1.0}),
        ("shift-3", lambda f: {"eval_shift": 0.5 if f.task == "lm" else 3.0}))),
)


@dataclass(frozen=True)
class Run:
    """One corpus run: what was injected and the config that trains it."""

    fault: str          # "healthy" or a Fault's name
    variant: str        # the variant's label, or the LR style for healthy runs
    expected: str       # the finding code that names it ("healthy" for healthy runs)
    accepted: tuple[str, ...]
    config: dict[str, Any]

    @property
    def family(self) -> str:
        return str(self.config["family"])

    @property
    def seed(self) -> int:
        return int(self.config["seed"])


def _healthy_overrides(style: str, f: Family) -> dict[str, Any]:
    c: dict[str, Any] = {"lr_style": style}
    if style == "plateau-torch" or style == "plateau-lrdoctor":
        c["plateau_monitor"] = "val_loss"
    return c


def corpus(families: Iterable[str] | None = None, seeds: Iterable[int] = SEEDS,
           faults: Iterable[str] | None = None, healthy: bool = True) -> list[Run]:
    """Every run of the corpus (or of the named families / faults), healthy runs first."""
    fams = [FAMILIES[n] for n in (families or FAMILIES)]
    wanted = set(faults) if faults is not None else None
    runs: list[Run] = []
    for seed in seeds:
        for f in fams:
            if healthy and (wanted is None or "healthy" in wanted):
                for style in LR_STYLES:
                    runs.append(Run("healthy", style, "healthy", (),
                                    {"family": f.name, "seed": seed,
                                     **_healthy_overrides(style, f)}))
            for fault in FAULTS:
                if wanted is not None and fault.name not in wanted:
                    continue
                for label, fn in fault.variants:
                    over = fn(f)
                    if over is None:
                        continue
                    runs.append(Run(fault.name, label, fault.expected, fault.accepted,
                                    {"family": f.name, "seed": seed, **over}))
    return runs


def not_applicable() -> list[tuple[str, str, str]]:
    """(fault, variant, family) triples a fault does not apply to."""
    return [(fault.name, label, f.name) for f in FAMILIES.values() for fault in FAULTS
            for label, fn in fault.variants if fn(f) is None]


# ----------------------------------------------------------------------------- training
@dataclass
class RunResult:
    """What one trained run left: its config, log paths and final metrics."""

    key: str
    config: dict[str, Any]
    jsonl: str
    csv: str
    history: list[dict[str, float]] = field(default_factory=list)
    val_loss: float = math.nan
    val_accuracy: float | None = None
    test_loss: float = math.nan
    test_accuracy: float | None = None
    train_loss: float = math.nan
    train_accuracy: float | None = None
    diverged: bool = False
    steps: int = 0
    seconds: float = 0.0
    lr_cuts_while_improving: int = 0

    @property
    def metric(self) -> float:
        """The family's quality number: final val accuracy, or val loss (inf when not finite)."""
        fam = FAMILIES[self.config["family"]]
        if fam.metric == "accuracy":
            return float(self.val_accuracy or 0.0)
        return self.val_loss if math.isfinite(self.val_loss) else math.inf


def _optimizer(name: str, params: Any, lr: float, weight_decay: float | None) -> Any:
    import torch

    wd = {} if weight_decay is None else {"weight_decay": float(weight_decay)}
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, **wd)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, **wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, **wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, **wd)
    return torch.optim.RMSprop(params, lr=lr, **wd)


def _schedule_spec(c: dict[str, Any], total: int) -> str | None:
    lr, style, warm = float(c["lr"]), c["lr_style"], int(c["warmup_steps"])
    if c["schedule"]:
        base = str(c["schedule"])
    elif style == "warmup-cosine":
        warm = max(warm, max(1, total // 20))
        return f"warmup({warm}) >> cosine({lr:g}, end={lr / 100:g}, steps={max(1, total - warm)})"
    elif style == "step":
        base = f"step({lr:g}, every={max(1, total // 3)}, gamma=0.3)"
    elif style == "one-cycle":
        base = f"one_cycle({lr:g}, steps={total})"
    elif warm:
        base = f"constant({lr:g})"
    else:
        return None
    return f"warmup({warm}) >> {base}" if warm else base


def _plateau_mode(c: dict[str, Any]) -> str:
    if c["plateau_mode"]:
        return str(c["plateau_mode"])
    return "max" if c["plateau_monitor"] == "val_accuracy" else "min"


def train_run(config: dict[str, Any], out_dir: str | os.PathLike[str] = CACHE) -> RunResult:
    """Train one run with the live Monitor; write ``<key>.jsonl``, ``.csv`` and ``.json``."""
    import torch
    from _families import evaluate, loss_fn, make_data, make_model, make_test

    from lrdoctor.torch import Monitor, PlateauLR, ScheduledLR

    c = full_config(config)
    key = config_key(c)
    fam = FAMILIES[c["family"]]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(c["seed"])
    xtr, ytr, xva, yva = make_data(
        fam.name, seed, label_noise=c["label_noise"], normalize_inputs=c["normalize_inputs"],
        shuffle=c["shuffle"], input_scale=c["input_scale"], n_train=c["n_train"],
        train_noise=c["train_noise"])
    xte, yte = make_test(fam.name, seed, eval_shift=c["eval_shift"],
                         normalize_inputs=c["normalize_inputs"], input_scale=c["input_scale"])
    model = make_model(fam.name, seed, init=c["init"], activation=c["activation"],
                       output_activation=c["output_activation"], dropout=c["dropout"],
                       width=c["width"], depth=c["depth"])
    lf = loss_fn(fam.name, label_smoothing=c["label_smoothing"])
    lr = float(c["lr"])
    opt = _optimizer(c["optimizer"], model.parameters(), lr, c["weight_decay"])
    bs = min(int(c["batch_size"]), len(ytr))
    per_epoch = math.ceil(len(ytr) / bs)
    epochs = int(c["epochs"]) * (2 if c["lr_style"] == "early-stopping" else 1)
    total = per_epoch * epochs
    spec = _schedule_spec(c, total)
    style = c["lr_style"]
    plateau: Any = None
    stepper: Any = None
    monitor_name = str(c["plateau_monitor"])
    if style == "plateau-torch":
        if spec is not None:
            raise unsupported("schedule", "plateau-torch runs at a constant LR; use "
                              "plateau-lrdoctor to compose a schedule with plateau reduction")
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=_plateau_mode(c), factor=float(c["plateau_factor"]),
            patience=int(c["plateau_patience"]))
    elif style == "plateau-lrdoctor":
        plateau = PlateauLR(opt, mode=_plateau_mode(c), factor=float(c["plateau_factor"]),
                            patience=int(c["plateau_patience"]), monitor=monitor_name,
                            schedule=spec)
    elif spec is not None:
        stepper = ScheduledLR(opt, spec)
    jsonl, csv_path = out / f"{key}.jsonl", out / f"{key}.csv"
    jsonl.unlink(missing_ok=True)
    res = RunResult(key=key, config=c, jsonl=str(jsonl), csv=str(csv_path))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks
    classify = fam.task != "regression"
    best: float | None = None
    stale = 0
    t0 = time.perf_counter()
    with Monitor(model, opt, jsonl, loss_fn=lf) as mon:
        if style == "plateau-lrdoctor":
            mon.watch(plateau, metric=monitor_name)
        for epoch in range(epochs):
            model.train()
            order = (torch.randperm(len(ytr), generator=gen) if c["shuffle"] or fam.task == "lm"
                     else torch.arange(len(ytr)))
            tot, correct, count = 0.0, 0, 0
            for i in range(0, len(order), bs):
                idx = order[i:i + bs]
                xb, yb = xtr[idx], ytr[idx]
                opt.zero_grad(set_to_none=True)
                output = model(xb)
                loss = lf(output, yb)
                loss.backward()
                if c["grad_clip"]:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(c["grad_clip"]))
                opt.step()
                if stepper is not None:
                    stepper.step()
                value = float(loss.detach())
                mon.step(loss=value, inputs=xb, targets=yb)
                res.steps += 1
                if not math.isfinite(value):
                    res.diverged = True
                    break
                tot += value * len(idx)
                if classify:
                    correct += int((output.detach().argmax(-1) == yb).sum())
                count += yb.numel() if classify else len(idx)
            val = evaluate(fam.name, model, xva, yva)
            test = evaluate(fam.name, model, xte, yte, prefix="test_")
            row: dict[str, float] = {"epoch": epoch,
                                     "loss": tot / max(count if not classify else len(order), 1)
                                     if not res.diverged else math.nan}
            if classify:
                row["accuracy"] = correct / max(count, 1)
            row.update(val)
            row["lr"] = float(opt.param_groups[0]["lr"])
            res.history.append(row)
            mon.epoch(**{k: v for k, v in row.items() if k not in ("epoch", "lr")}, **test)
            watched = row.get(monitor_name, row["val_loss"])
            if plateau is not None and not res.diverged:
                before = float(opt.param_groups[0]["lr"])
                plateau.step(watched)
                after = float(opt.param_groups[0]["lr"])
                if after < before * 0.999 and _new_best(res.history, fam):
                    res.lr_cuts_while_improving += 1
            res.test_loss = test["test_loss"]
            res.test_accuracy = test.get("test_accuracy")
            if res.diverged:
                break
            if style == "early-stopping":
                score = -row["val_accuracy"] if "val_accuracy" in row else row["val_loss"]
                if best is None or score < best - 1e-4:
                    best, stale = score, 0
                else:
                    stale += 1
                    if stale >= 2:
                        break
    res.seconds = time.perf_counter() - t0
    last = res.history[-1]
    res.val_loss = float(last["val_loss"])
    res.val_accuracy = last.get("val_accuracy")
    res.train_loss = float(last["loss"])
    res.train_accuracy = last.get("accuracy")
    cols = ["epoch", "loss", *(["accuracy"] if classify else []), "val_loss",
            *(["val_accuracy"] if classify else []), "lr"]
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(res.history)
    (out / f"{key}.json").write_text(json.dumps(asdict(res), default=str))
    return res


def _new_best(history: list[dict[str, float]], fam: Family) -> bool:
    """Whether the last epoch set a new best validation metric (accuracy, else loss)."""
    key = "val_accuracy" if fam.task != "regression" else "val_loss"
    values = [h[key] for h in history]
    if len(values) < 2:
        return False
    prior = values[:-1]
    return values[-1] > max(prior) if key == "val_accuracy" else values[-1] < min(prior)


def cached(config: dict[str, Any], out_dir: str | os.PathLike[str] = CACHE) -> RunResult | None:
    """The cached result of ``config``, or None when it was not trained yet."""
    key = config_key(config)
    path = Path(out_dir) / f"{key}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    data["jsonl"] = str(Path(out_dir) / f"{key}.jsonl")
    data["csv"] = str(Path(out_dir) / f"{key}.csv")
    return RunResult(**data)


def _worker_init() -> None:
    import torch

    try:
        os.nice(10)
    except OSError:  # pragma: no cover
        pass
    torch.set_num_threads(1)


def _train_job(args: tuple[dict[str, Any], str]) -> str:
    """Train one config; a failure comes back as its message (the other runs go on)."""
    config, out_dir = args
    try:
        return train_run(config, out_dir).key
    except Exception as err:  # noqa: BLE001 - reported by run_all with the config
        return f"error: {type(err).__name__}: {err} in {json.dumps(config)}"


def run_all(runs: list[Run], out_dir: str | os.PathLike[str] = CACHE, *, workers: int = 2,
            progress: bool = True) -> tuple[list[tuple[Run, RunResult]], float]:
    """Train the runs not in the cache (``workers`` niced processes, 1 thread each); return
    every (run, result) pair and the seconds spent training."""
    todo = [r for r in runs if cached(r.config, out_dir) is None]
    t0 = time.perf_counter()
    errors: list[str] = []
    if todo:
        if workers <= 1:
            _worker_init()
            for i, r in enumerate(todo, 1):
                train_run(r.config, out_dir)
                if progress and (i % 20 == 0 or i == len(todo)):
                    print(f"corpus: trained {i}/{len(todo)} runs "
                          f"({time.perf_counter() - t0:.0f} s)", flush=True)
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init) as pool:
                jobs = [(r.config, str(out_dir)) for r in todo]
                for i, got in enumerate(pool.map(_train_job, jobs, chunksize=4), 1):
                    if got.startswith("error: "):
                        errors.append(got)
                    if progress and (i % 25 == 0 or i == len(todo)):
                        print(f"corpus: trained {i}/{len(todo)} runs "
                              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    seconds = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} corpus runs failed; the first: {errors[0]}")
    out = []
    for r in runs:
        res = cached(r.config, out_dir)
        if res is None:  # pragma: no cover - a worker failed to write
            raise RuntimeError(f"run {r} left no result in {out_dir}")
        out.append((r, res))
    return out, seconds


# ----------------------------------------------------------------------------- does it bite
def bites(run: Run, result: RunResult, reference: dict[str, float]) -> bool:
    """Whether the injected fault really shows in this run, against the family's healthy runs.

    ``reference``: the mean over the family's healthy constant-LR runs of ``metric``, ``gap``
    (test minus validation: accuracy points, or relative loss) and ``train_accuracy`` (or
    ``train_loss``). The tests, per fault:

    * ``distribution-shift``: the test metric is worse than validation by 5 points of accuracy
      (10% of loss) more than on the healthy runs;
    * ``plateau-monitor-mismatch``: the LR was cut at an epoch that set a new best;
    * ``overfitting``: the final validation loss is >= 1.1x its minimum and above the final
      training loss;
    * ``label-noise``: training accuracy (loss) 10 points (50%) worse than healthy;
    * every other fault: the validation metric is >= 2 points of accuracy (5% of loss) worse
      than healthy, or the run diverged.
    """
    fam = FAMILIES[result.config["family"]]
    acc = fam.metric == "accuracy"
    if run.fault == "healthy":
        return False
    if run.fault == "distribution-shift":
        if acc:
            gap = float(result.val_accuracy or 0) - float(result.test_accuracy or 0)
            return gap > reference["gap"] + 0.05
        gap = result.test_loss / max(result.val_loss, 1e-12) - 1
        return not math.isfinite(gap) or gap > reference["gap"] + 0.10
    if run.fault == "plateau-monitor-mismatch":
        return result.lr_cuts_while_improving > 0
    if run.fault == "overfitting":
        vals = [h["val_loss"] for h in result.history if math.isfinite(h["val_loss"])]
        return bool(vals) and vals[-1] >= 1.1 * min(vals) and vals[-1] > result.train_loss
    if run.fault == "label-noise" and fam.task == "classification":
        return float(result.train_accuracy or 0) < reference["train_accuracy"] - 0.10
    if run.fault == "label-noise":
        return result.train_loss > 1.5 * reference["train_loss"]
    if result.diverged:
        return True
    if acc:
        return result.metric < reference["metric"] - 0.02
    return result.metric > reference["metric"] * 1.05


def references(pairs: list[tuple[Run, RunResult]]) -> dict[str, dict[str, float]]:
    """Per family: the healthy constant-LR runs' mean metric, test gap and training fit."""
    import numpy as np

    out: dict[str, dict[str, float]] = {}
    for fam in FAMILIES.values():
        rs = [res for run, res in pairs
              if run.fault == "healthy" and run.variant == "constant" and run.family == fam.name]
        if not rs:
            continue
        if fam.metric == "accuracy":
            gap = [float(r.val_accuracy or 0) - float(r.test_accuracy or 0) for r in rs]
        else:
            gap = [r.test_loss / max(r.val_loss, 1e-12) - 1 for r in rs]
        out[fam.name] = {"metric": float(np.mean([r.metric for r in rs])),
                         "gap": float(np.mean(gap)),
                         "train_accuracy": float(np.mean([float(r.train_accuracy or 0) for r in rs])),
                         "train_loss": float(np.mean([r.train_loss for r in rs]))}
    return out


if __name__ == "__main__":
    runs = corpus()
    if "--list" in sys.argv:
        for r in runs:
            print(r.fault, r.variant, r.family, r.seed, json.dumps(r.config))
        print(f"{len(runs)} runs; not applicable: {len(not_applicable())} (fault, variant, family)")
        sys.exit(0)
    pairs, secs = run_all(runs)
    print(f"corpus: {len(pairs)} runs in {CACHE} ({secs:.0f} s of training this time)")
