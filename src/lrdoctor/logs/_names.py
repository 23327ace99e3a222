"""Map each framework's metric names onto the canonical names of the log model.

The rule, applied to the raw name split at ``/``, ``_``, ``-``, ``.`` and spaces:

1. Known bookkeeping columns (``epoch``, ``step``, ``created_at``, ``train_runtime``, …) are
   skipped (:func:`canonical` returns None).
2. ``lr``, ``learning_rate`` → ``lr``; ``lr-Adam`` (Lightning's LearningRateMonitor) → ``lr/Adam``;
   ``grad_norm`` → ``grad_norm``.
3. A split word (train/training, val/valid/validation/eval/dev, test) at the start or the end
   decides the split; without one the split is ``train`` (Keras: ``loss``, ``accuracy``).
4. Lightning's ``_step`` suffix is dropped (``train_loss_step`` → ``train/loss``); ``_epoch``
   is kept as ``<metric>_epoch`` (the epoch mean), unless nothing else holds the metric.
5. Accuracy aliases (``acc``, ``sparse_categorical_accuracy``, ``categorical_accuracy``,
   ``binary_accuracy``) become ``accuracy``.

Names that are already canonical (our JSONL) pass through unchanged.

>>> [canonical(n) for n in ["loss", "val_loss", "eval_accuracy", "learning_rate", "lr-Adam"]]
['train/loss', 'val/loss', 'val/accuracy', 'lr', 'lr/Adam']
>>> [canonical(n) for n in ["train_loss_step", "Valid MSE", "train/nll_loss", "epoch"]]
['train/loss', 'val/mse', 'train/nll_loss', None]
"""

from __future__ import annotations

import re

__all__ = ["CANONICAL_PREFIXES", "canonical"]

CANONICAL_PREFIXES = ("train/", "val/", "test/", "lr/", "grad_norm/", "update_ratio/",
                      "dead_frac/", "saturation/", "act_std/", "input/", "batch/", "nonfinite/",
                      "param_norm/")
_CANONICAL_EXACT = {"lr", "grad_norm", "param_norm", "noise_scale"}

_SKIP = {
    "epoch", "step", "global_step", "created_at", "epoch_time", "time", "timestamp", "wall_time",
    "train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",
    "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "train_loss_total",
    "num_input_tokens_seen", "num_tokens", "batch", "iteration", "iter", "unnamed: 0", "",
}
_SUMMARY = {"train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second",
            "total_flos", "epoch", "step"}
_SPLITS = {"train": "train", "training": "train", "trn": "train",
           "val": "val", "valid": "val", "validation": "val", "eval": "val", "dev": "val",
           "evaluation": "val", "test": "test", "testing": "test"}
_ACC = {"acc", "accuracy", "sparse_categorical_accuracy", "categorical_accuracy",
        "binary_accuracy", "sparse_accuracy", "top1", "top1_accuracy"}
_LR = {"lr", "learning_rate", "learningrate", "learning rate"}
_SEP = re.compile(r"[/_\-.\s]+")


def canonical(raw: str, *, keep_epoch_suffix: bool = True) -> str | None:
    """The canonical name for a raw metric name, or None for a bookkeeping column."""
    name = raw.strip()
    if name in _CANONICAL_EXACT or (name.startswith(CANONICAL_PREFIXES) and name.count("/") >= 1
                                    and name.split("/", 1)[1]):
        return _canonical_passthrough(name)
    low = name.lower()
    if low in _SKIP:
        return None
    if low in _LR:
        return "lr"
    if low.startswith(("lr-", "lr/", "lr_")) and len(name) > 3:
        return "lr/" + name[3:]
    if low.endswith(("/learning_rate", "/lr")) and low.split("/")[0] in _SPLITS:
        return "lr"
    tokens = [t for t in _SEP.split(low) if t]
    if not tokens:
        return None
    split = "train"
    if tokens[0] in _SPLITS and len(tokens) > 1:
        split = _SPLITS[tokens.pop(0)]
    elif tokens[-1] in _SPLITS and len(tokens) > 1:
        split = _SPLITS[tokens.pop()]
    elif tokens[0] == "epoch" and len(tokens) > 1:  # Keras TensorBoard tags: epoch_loss
        tokens.pop(0)
    if tokens[-1] == "step" and len(tokens) > 1:
        tokens.pop()
    elif tokens[-1] == "epoch" and len(tokens) > 1:
        tokens.pop()
        if keep_epoch_suffix:
            tokens.append("epoch")
    if tokens and tokens[0] in _SPLITS and len(tokens) > 1:  # "train_epoch_perplexity" etc.
        tokens.pop(0)
    if tokens and tokens[0] == "epoch" and len(tokens) > 1:  # "validation/epoch_loss"
        tokens.pop(0)
    metric = "_".join(tokens)
    if metric in {"learning_rate", "lr"}:
        return "lr"
    if metric in {"grad_norm", "gradient_norm"}:
        return "grad_norm"
    if metric in _ACC:
        metric = "accuracy"
    elif metric.endswith("_epoch") and metric[:-6] in _ACC:
        metric = "accuracy_epoch"
    if metric in _SKIP or metric in {"runtime", "samples_per_second", "steps_per_second", "flos"}:
        return None
    return f"{split}/{metric}"


def _canonical_passthrough(name: str) -> str | None:
    split, _, metric = name.partition("/")
    if split not in {"train", "val", "test"}:
        return name
    low = metric.lower()
    if low in _SUMMARY:
        return None
    if low.startswith("epoch_") and len(low) > 6:  # Keras TensorBoard: train/epoch_loss
        metric, low = metric[6:], low[6:]
    if low in _LR:
        return "lr"
    if low in {"grad_norm", "gradient_norm"}:
        return "grad_norm"
    if low in _SKIP or low in {"runtime", "samples_per_second", "steps_per_second", "flos"}:
        return None
    if low in _ACC:
        return f"{split}/accuracy"
    return f"{split}/{metric}"
