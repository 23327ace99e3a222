"""A ``train_fn`` for :func:`lrdoctor.repair` on the example tasks, and faults to inject.

A run is a config dict keyed by the repair vocabulary (docs/repair.md) plus a few keys that
only inject faults (``input_scale``, ``label_noise``, ``data_order``, ``hidden``); ``width`` (the
classifiers') is the first hidden layer's units or channels, and every hidden layer scales with
it (charlm has none: a ``width`` change raises ``UnsupportedChange`` there);
:func:`config` gives a task's healthy config, :data:`FAULTS` the overrides of each fault kind.
:class:`ExampleTrainer` trains one config under :class:`lrdoctor.torch.Monitor` and returns the
path of its JSONL log (torch is imported when it trains, not when this module loads).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lrdoctor.errors import LRDoctorError, UnsupportedChange

__all__ = ["FAULTS", "ExampleTrainer", "config", "fault_config", "resolve_schedule"]

_CLASSIFIERS = ("digits-mlp", "digits-cnn", "mnist1d-conv")

#: fault kind -> (what it injects, a function of the healthy config giving the overrides)
FAULTS: dict[str, tuple[str, Any]] = {
    "lr-too-high": ("SGD at 100x the task's reference lr", lambda c: {"lr": c["lr"] * 100}),
    "lr-too-low": ("SGD at 1/1000 of the reference lr", lambda c: {"lr": c["lr"] / 1000}),
    "missing-warmup": ("Adam at 30x its reference lr from step 0",
                       lambda c: {"optimizer": "adam", "lr": c["adam_lr"] * 30}),
    "plateau-min-on-accuracy": ("a plateau scheduler on val_accuracy in mode 'min'",
                                lambda c: {"plateau_mode": "min", "plateau_monitor": "val_accuracy"}),
    "softmax-output": ("a softmax in front of CrossEntropyLoss",
                       lambda c: {"output_activation": "softmax"}),
    "unnormalized-input": ("inputs multiplied by 255", lambda c: {"input_scale": 255.0}),
    "unshuffled-data": ("training data sorted by label and never shuffled",
                        lambda c: {"shuffle": False, "data_order": "by_label"}),
    "strong-weight-decay": ("weight decay 0.3", lambda c: {"weight_decay": 0.3}),
    "heavy-dropout": ("dropout 0.9", lambda c: {"dropout": 0.9}),
    "dead-relu": ("every bias initialised at -3", lambda c: {"init": "bias:-3"}),
    "huge-init": ("weights drawn with std 3", lambda c: {"init": "normal:3.0"}),
    "deep-sigmoid": ("sigmoid activations (8 layers of 64 in digits-mlp)",
                     lambda c: {"activation": "sigmoid",
                                **({"hidden": (64,) * 8} if "hidden" in c else {})}),
    "label-noise": ("40% of the training labels replaced at random", lambda c: {"label_noise": 0.4}),
    "narrow-model": ("width 2 (the first hidden layer; the others scaled alike)",
                     lambda c: {"width": 2}),
}

#: the width (units or channels of the first hidden layer) of each classifier's default model;
#: a config's ``width`` scales every hidden layer by ``width / this``
_WIDTH = {"digits-mlp": ("hidden", 128), "digits-cnn": ("channels", 16),
          "mnist1d-conv": ("channels", 32)}


def config(name: str, *, seed: int = 0, epochs: int | None = None) -> dict[str, Any]:
    """The healthy config of example ``name``: SGD (momentum 0.9) at the task's reference lr."""
    from lrdoctor.examples import _SPECS, MODEL_OPTIONS

    if name not in _SPECS:
        raise LRDoctorError(f"unknown example {name!r}; choose one of: {', '.join(_SPECS)}")
    batch, default_epochs, _metric, lrs, _text = _SPECS[name]  # no data loaded here
    c: dict[str, Any] = {
        "example": name, "seed": int(seed), "optimizer": "sgd",
        "lr": lrs["sgd"], "adam_lr": lrs["adam"],
        "schedule": None, "warmup_steps": 0, "weight_decay": 0.0, "grad_clip": None,
        "batch_size": batch, "epochs": default_epochs if epochs is None else int(epochs),
        "init": "default", "dropout": 0.0, "label_smoothing": 0.0, "shuffle": True,
        "plateau_mode": None, "plateau_monitor": None,
        "data_order": "given", "label_noise": 0.0,
    }
    if name in _CLASSIFIERS:
        c.update({"activation": "relu", "output_activation": None, "normalize_inputs": False,
                  "input_scale": 1.0, "width": _WIDTH[name][1]})
    if name == "digits-mlp":
        c["hidden"] = tuple(MODEL_OPTIONS[name]["hidden"])
    return c


def fault_config(name: str, fault: str | None, *, seed: int = 0,
                 epochs: int | None = None) -> dict[str, Any]:
    """:func:`config` with fault kind ``fault`` (a key of :data:`FAULTS`) injected."""
    c = config(name, seed=seed, epochs=epochs)
    if fault is None:
        return c
    if fault not in FAULTS:
        raise LRDoctorError(f"unknown fault {fault!r}; choose one of: {', '.join(FAULTS)}")
    overrides = FAULTS[fault][1](c)
    unknown = sorted(set(overrides) - set(c))
    if unknown:
        raise LRDoctorError(f"fault {fault!r} does not apply to example {name!r} (it has no "
                            f"{', '.join(unknown)}); try another example")
    c.update(overrides)
    return c


def resolve_schedule(cfg: Mapping[str, Any], total_steps: int) -> str:
    """The spec a config trains with: ``warmup(W) >> `` + its ``schedule`` with ``{lr}`` and
    ``{steps}`` (the steps after warm-up) filled in; ``constant(lr)`` when there is none.

    >>> resolve_schedule({"lr": 0.1, "schedule": "cosine({lr}, end=0, steps={steps})",
    ...                   "warmup_steps": 10}, 100)
    'warmup(10) >> cosine(0.1, end=0, steps=90)'
    """
    lr = float(cfg["lr"])
    warm = int(cfg.get("warmup_steps") or 0)
    warm = min(warm, max(total_steps - 1, 0))
    rest = max(total_steps - warm, 1)
    spec = cfg.get("schedule") or "constant({lr})"
    spec = spec.replace("{lr}", f"{lr:.6g}").replace("{steps}", str(rest))
    return f"warmup({warm}) >> {spec}" if warm else spec


class ExampleTrainer:
    """``train_fn(config) -> log path`` for the example tasks: trains one config under the
    Monitor into ``out_dir/run-NN/log.jsonl`` (NN counts the calls).

    Knobs the task lacks raise :class:`~lrdoctor.errors.UnsupportedChange` (``activation`` on
    ``charlm``). ``results`` keeps each run's final validation metrics, in call order.
    """

    def __init__(self, out_dir: str | os.PathLike[str], *, threads: int | None = 1):
        self.out_dir = Path(out_dir)
        self.threads = threads
        self.calls = 0
        self.results: list[dict[str, float]] = []

    def __call__(self, cfg: Mapping[str, Any]) -> Path:
        import torch

        from lrdoctor import examples

        name = cfg["example"]
        known = set(config(name))
        for key in cfg:
            if key not in known:
                raise UnsupportedChange(key, f"example {name!r} has no knob {key!r}")
        self.calls += 1
        run_dir = self.out_dir / f"run-{self.calls:02d}"
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "log.jsonl"
        path.unlink(missing_ok=True)
        saved = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            metrics = _train(examples, dict(cfg), path)
        finally:
            torch.set_num_threads(saved)
        self.results.append(metrics)
        return path


def _model_options(name: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = {"dropout": float(cfg["dropout"])}
    init = str(cfg["init"])
    opts["init"] = "default" if init.startswith("bias:") else init
    if name in _CLASSIFIERS:
        opts["activation"] = cfg["activation"]
        if cfg["output_activation"] not in (None, "softmax"):
            raise UnsupportedChange("output_activation",
                                    f"output_activation must be None or 'softmax' here, got "
                                    f"{cfg['output_activation']!r}")
        opts["softmax_output"] = cfg["output_activation"] == "softmax"
    if "hidden" in cfg:
        opts["hidden"] = tuple(cfg["hidden"])
    if name in _WIDTH:
        opts.update(_scaled(name, cfg["width"], opts))
    return opts


def _scaled(name: str, width: Any, opts: Mapping[str, Any]) -> dict[str, Any]:
    """The model's width options scaled by ``width / default`` (each layer at least 1)."""
    from lrdoctor.examples import MODEL_OPTIONS

    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise UnsupportedChange("width", f"width must be an int >= 1 here, got {width!r}")
    key, default = _WIDTH[name]
    r = width / default

    def scale(v: Any) -> Any:
        return max(1, round(v * r)) if isinstance(v, int) else tuple(scale(x) for x in v)

    out = {key: scale(opts.get(key, MODEL_OPTIONS[name][key]))}
    if name == "digits-cnn":
        out["hidden"] = scale(MODEL_OPTIONS[name]["hidden"])
    return out


def _data(task: Any, cfg: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    d = task.data
    x, y, xv, yv = d.x_train, d.y_train, d.x_val, d.y_val
    scale = float(cfg.get("input_scale", 1.0))
    if scale != 1.0:
        x, xv = x * scale, xv * scale
    if cfg.get("normalize_inputs"):
        mean, std = float(x.mean()), float(x.std()) or 1.0
        x, xv = (x - mean) / std, (xv - mean) / std
    noise = float(cfg.get("label_noise") or 0.0)
    if noise:
        rng = np.random.default_rng(1000 + int(cfg["seed"]))
        flip = rng.random(len(y)) < noise
        y = y.copy()
        y[flip] = rng.integers(0, d.n_classes, int(flip.sum()))
    if cfg.get("data_order") == "by_label":
        order = np.argsort(y.reshape(len(y), -1)[:, 0], kind="stable")
        x, y = x[order], y[order]
    return x, y, xv, yv


def _train(examples: Any, cfg: dict[str, Any], path: Path) -> dict[str, float]:
    import torch

    from lrdoctor.torch import Monitor, PlateauLR, ScheduledLR

    name, seed = cfg["example"], int(cfg["seed"])
    task = examples.get(name, seed=seed, **_model_options(name, cfg))
    x, y, xv, yv = _data(task, cfg)
    model = task.build_model(seed)
    init = str(cfg["init"])
    if init.startswith("bias:"):
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)) \
                        and m.bias is not None:
                    m.bias.fill_(float(init.split(":", 1)[1]))
    wd = float(cfg["weight_decay"])
    family = {"momentum": "sgd"}.get(cfg["optimizer"], cfg["optimizer"])  # 'sgd' has momentum
    if family not in examples.OPTIMIZERS:
        raise UnsupportedChange("optimizer", f"the example tasks train with "
                                f"{', '.join(examples.OPTIMIZERS)}, not {cfg['optimizer']!r}")
    opt = examples.make_optimizer(family, model, float(cfg["lr"]), weight_decay=wd)
    bs, epochs = int(cfg["batch_size"]), int(cfg["epochs"])
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    xvt, yvt = torch.as_tensor(xv), torch.as_tensor(yv)
    per_epoch = math.ceil(len(yt) / bs)
    spec = resolve_schedule(cfg, per_epoch * epochs)
    plateau = None
    if cfg["plateau_monitor"] is not None:  # a plateau scheduler; mode None: the metric's own
        monitor = cfg["plateau_monitor"]
        plateau = PlateauLR(opt, mode=cfg["plateau_mode"] or "auto", factor=0.5, patience=1,
                            monitor=monitor, schedule=spec)
        sched = None
    else:
        sched = ScheduledLR(opt, spec)
    smoothing = float(cfg["label_smoothing"])
    base_loss = task.loss_fn
    loss_fn = type(base_loss)(label_smoothing=smoothing) if smoothing else base_loss
    gen = torch.Generator().manual_seed(seed + 1)
    clip = cfg["grad_clip"]
    metrics: dict[str, float] = {}
    with Monitor(model, opt, path, loss_fn=loss_fn) as mon:
        if plateau is not None:
            mon.watch(plateau)
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(yt), generator=gen) if cfg["shuffle"] \
                else torch.arange(len(yt))
            diverged = False
            for i in range(0, len(order), bs):
                idx = order[i:i + bs]
                xb, yb = xt[idx], yt[idx]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
                opt.step()
                if sched is not None:
                    sched.step()
                value = float(loss.detach())
                mon.step(loss=value, inputs=xb, targets=yb)
                if not math.isfinite(value):
                    diverged = True
                    break
            metrics = _evaluate(task, model, xvt, yvt, base_loss)
            mon.epoch(**metrics)
            if plateau is not None:
                key = "val_accuracy" if plateau.monitor == "val_accuracy" else "val_loss"
                plateau.step(metrics.get(key, metrics["val_loss"]))
            if diverged:
                break
    return metrics


def _evaluate(task: Any, model: Any, xv: Any, yv: Any, loss_fn: Any) -> dict[str, float]:
    import torch

    model.eval()
    with torch.no_grad():
        losses, correct, n = 0.0, 0, 0
        for i in range(0, len(yv), 512):
            out = model(xv[i:i + 512]).float()
            yb = yv[i:i + 512]
            losses += float(loss_fn(out, yb)) * yb.numel()
            if task.metric == "accuracy":
                correct += int((out.argmax(-1) == yb).sum())
            n += yb.numel()
    model.train()
    out = {"val_loss": losses / n}
    if task.metric == "accuracy":
        out["val_accuracy"] = correct / n
    return out
