"""Task families for the doctor's fault corpus: small models and data that differ in kind.

Each family is one (data, architecture, loss) triple that trains on a CPU in about a second on
one thread; nothing is downloaded (scikit-learn's bundled or generated sets, MNIST-1D generated
locally, the standard library's own sources for characters).

The API (stable: the corpus, the repair benchmark and the finder benchmark build on it)

``FAMILIES: dict[str, Family]``
    ``Family`` fields: ``name``; ``task`` (``"classification"``, ``"regression"`` or ``"lm"``);
    ``metric`` (``"accuracy"``: higher is better, or ``"loss"``: lower is better, the
    validation loss); ``classes`` (output count: classes, vocabulary size, 1 for regression);
    the default ``optimizer`` (``"sgd"`` plain, ``"momentum"`` SGD 0.9, ``"adam"``, ``"adamw"``,
    ``"rmsprop"``), ``lr`` (that optimizer's learning rate), ``batch_size``, ``epochs``;
    ``lrs`` (a sensible learning rate for every optimizer name); ``data`` and ``model`` (short
    descriptions); ``width``/``depth`` (the defaults that ``make_model`` reads).

``make_data(name, seed, *, label_noise=0.0, normalize_inputs=True, shuffle=True,
input_scale=1.0, n_train=None, train_noise=0.0) -> (train_x, train_y, val_x, val_y)``
    torch tensors. The split is fixed per data set (it does not depend on ``seed``); ``seed``
    draws the label noise and the training-input noise.

    * ``label_noise`` = p: each training label is replaced with probability p by a uniformly
      drawn class (so about p·(C-1)/C of them end up wrong); for regression each target is
      replaced with probability p by a draw from N(0, 1) in standardised units. Validation
      labels stay clean.
    * ``normalize_inputs``: standardise features with the training split's mean and standard
      deviation (per feature). ``False`` gives the raw features: breast-cancer's physical units
      (0.05 .. 4000), digit pixels 0..16, Friedman inputs in their generated units (each
      feature scaled by 10**k, k = 0..3). MNIST-1D's generator already emits near-standard
      values, so on the MNIST-1D families ``False`` changes little (a fault that does not bite).
    * ``input_scale``: multiply every input (train and validation) by this after normalising.
    * ``shuffle=False``: the training rows come sorted by label (by target for regression, in
      corpus order for ``lm``); the corpus trains them in that order.
    * ``n_train``: keep the first n training rows (after the fixed split).
    * ``train_noise``: add N(0, train_noise²) to the (normalised) training inputs only.

    ``label_noise``, ``input_scale``, ``normalize_inputs`` and ``train_noise`` are refused with
    :func:`unsupported` where they do not apply (token inputs of ``lm``).

``make_test(name, seed, *, eval_shift=0.0, normalize_inputs=True, input_scale=1.0)``
    the test split ``(test_x, test_y)``; ``eval_shift`` = s adds s (in units of the feature's
    training standard deviation) to every test input: a covariate shift that validation does
    not see. For ``lm``, s is the fraction of test characters replaced by random ones.

``make_model(name, seed, *, init="default", activation="relu", output_activation=None,
dropout=0.0, width=None, depth=None) -> nn.Module``
    ``init``: ``default`` (torch's), ``xavier``, ``kaiming``, ``huge`` (weights N(0, 3²)),
    ``large`` (default weights x4), ``tiny`` (weights x1e-3), ``zeros`` (all weights 0),
    ``dead`` (default weights, every bias -3: dead ReLUs), ``dead-mild`` (biases -1).
    ``activation``: ``relu``, ``leaky_relu``, ``gelu``, ``tanh``, ``sigmoid``, ``identity``.
    ``output_activation``: ``None``, ``softmax``, ``sigmoid``, ``log_softmax``, ``relu``,
    ``tanh`` (applied to the model's output, in front of the family's loss: ``softmax`` with
    cross-entropy is the classic mistake). ``width``/``depth`` default to the family's.
    Weights are drawn from ``seed``; the global torch RNG is left as it was.

``loss_fn(name, *, label_smoothing=0.0)``
    cross-entropy (over every position for ``lm``) or mean squared error.

``evaluate(name, model, val_x, val_y, *, prefix="val_") -> {"val_loss": .., "val_accuracy": ..}``
    mean loss over the split in eval mode (and accuracy, next-character accuracy for ``lm``;
    regression has no accuracy key); the model's train/eval mode is restored.

``time_family(name)``: seconds one default run of the family takes on one thread (measured).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "FAMILIES", "FRESH", "Family", "evaluate", "loss_fn", "make_data", "make_model", "make_test",
    "names", "time_family", "unsupported",
]


@dataclass(frozen=True)
class Family:
    """One task family: its data, model, loss and default training settings."""

    name: str
    task: str                 # "classification" | "regression" | "lm"
    metric: str               # "accuracy" | "loss"
    classes: int
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    data: str
    model: str
    width: int
    depth: int
    lrs: dict[str, float] = field(default_factory=dict)


_ALL_OPT = ("sgd", "momentum", "adam", "adamw", "rmsprop")


def _lrs(sgd: float, adam: float) -> dict[str, float]:
    return {"sgd": sgd * 10, "momentum": sgd, "adam": adam, "adamw": adam, "rmsprop": adam / 3}


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("cancer-mlp", "classification", "accuracy", 2, "momentum", 0.01, 16, 20,
           "scikit-learn breast cancer (30 features; 341/114/114)", "MLP 30-64-64-2",
           64, 2, _lrs(0.01, 1e-3)),
    Family("digits-cnnbn", "classification", "accuracy", 10, "momentum", 0.05, 32, 4,
           "scikit-learn digits 8x8 (1077/360/360)", "2 conv + BatchNorm, 2 linear",
           8, 2, _lrs(0.05, 3e-3)),
    Family("mnist1d-cnn", "classification", "accuracy", 10, "adam", 0.01, 64, 6,
           "MNIST-1D, length 40 (3000/1000/1000)", "3 stride-2 conv1d + linear",
           24, 3, _lrs(0.05, 0.01)),
    Family("mnist1d-gru", "classification", "accuracy", 10, "adam", 0.02, 128, 10,
           "MNIST-1D as a sequence of 20 steps x 2 values", "GRU (1 layer) + linear",
           32, 1, _lrs(0.2, 0.02)),
    Family("charlm-tf", "lm", "loss", 97, "adamw", 5e-3, 32, 4,
           "characters of stdlib sources, 32-char windows", "1-layer causal transformer, d=32",
           32, 1, _lrs(0.3, 5e-3)),
    Family("friedman-reg", "regression", "loss", 1, "adam", 3e-3, 32, 8,
           "Friedman #1 regression, 10 features (1200/400/400)", "MLP 10-64-64-1, MSE",
           64, 2, _lrs(0.01, 3e-3)),
    Family("synth-resnet", "classification", "accuracy", 4, "momentum", 0.02, 64, 6,
           "make_classification, 20 features, 4 classes (2000/600/600)",
           "residual MLP, 3 blocks of width 64", 64, 3, _lrs(0.02, 2e-3)),
    Family("digits-wide", "classification", "accuracy", 10, "sgd", 0.1, 32, 6,
           "scikit-learn digits 8x8, flattened", "wide shallow MLP 64-512-10",
           512, 1, _lrs(0.01, 1e-3)),
    Family("digits-deep", "classification", "accuracy", 10, "rmsprop", 1e-3, 32, 8,
           "scikit-learn digits 8x8, flattened", "deep narrow MLP 64-(24 x 6)-10",
           24, 6, _lrs(0.02, 3e-3)),
    # The fresh families (see FRESH): added after every doctor rule and threshold was written.
    # diabetes-reg first had 40 epochs: its "healthy" runs overfit (validation MSE, its metric,
    # best at epoch 10, +27% by epoch 40, +54% for one-cycle), so the doctor's overfitting call
    # on them was right and the label wrong; 12 epochs from that validation curve alone.
    Family("diabetes-reg", "regression", "loss", 1, "sgd", 0.05, 16, 12,
           "scikit-learn diabetes, raw units (265/88/89)", "MLP 10-32-32-32-1, MSE",
           32, 3, _lrs(0.005, 3e-3)),
    Family("waves-lstm", "classification", "accuracy", 4, "rmsprop", 3e-3, 64, 8,
           "generated waveforms, 24 steps x 2 channels in sensor units (2400/800/800)",
           "LSTM (1 layer) + linear", 32, 1, _lrs(0.1, 1e-2)),
    Family("digits-vit", "classification", "accuracy", 10, "adamw", 3e-3, 32, 8,
           "scikit-learn digits 8x8 as 16 patches of 2x2", "1-layer patch transformer, d=32",
           32, 1, _lrs(0.02, 3e-3)),
)}

#: Families added to the corpus after every doctor rule and threshold had been written
#: (2026-12-07, 16:40 UTC), whose runs no rule author looked at one by one: the corpus's
#: cleanest held-out pool. Their models and data differ in kind from the first nine: a real
#: regression in raw units with plain SGD, an LSTM on multichannel signals with RMSprop, and
#: an attention model over image patches with AdamW.
FRESH: tuple[str, ...] = ("diabetes-reg", "waves-lstm", "digits-vit")


def names() -> tuple[str, ...]:
    """The family names, in a fixed order."""
    return tuple(FAMILIES)


def unsupported(key: str, why: str) -> Exception:
    """The error for a config key or value a family cannot apply: ``lrdoctor.UnsupportedChange``
    where the package defines it, else a ``KeyError`` naming the key."""
    try:
        from lrdoctor.errors import UnsupportedChange  # type: ignore[attr-defined]
    except ImportError:
        return KeyError(f"{key}: {why}")
    return UnsupportedChange(key, f"{key}: {why}")  # type: ignore[no-any-return]


def _family(name: str) -> Family:
    if name not in FAMILIES:
        raise KeyError(f"unknown family {name!r}; choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]


# ----------------------------------------------------------------------------- data
_RAW: dict[str, Any] = {}


def _split(n: int, seed: int, fractions: tuple[float, float] = (0.6, 0.2)) -> list[np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    a = round(n * fractions[0])
    b = a + round(n * fractions[1])
    return [perm[:a], perm[a:b], perm[b:]]


def _raw(data: str) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_val, y_val, x_test, y_test) raw arrays of one data set, memoised."""
    if data in _RAW:
        return _RAW[data]
    if data == "cancer":
        from sklearn.datasets import load_breast_cancer

        b = load_breast_cancer()
        x, y = b.data.astype(np.float32), b.target.astype(np.int64)
        parts = _split(len(y), 301)
    elif data == "digits":
        from sklearn.datasets import load_digits

        b = load_digits()
        x, y = b.data.astype(np.float32), b.target.astype(np.int64)
        parts = _split(len(y), 20240)
    elif data == "mnist1d":
        from lrdoctor.examples import _data  # generated locally, global RNGs isolated there

        d = _data.mnist1d()
        out = (d.x_train, d.y_train, d.x_val, d.y_val, d.x_test, d.y_test)
        _RAW[data] = out
        return out
    elif data == "friedman":
        from sklearn.datasets import make_friedman1

        x, y = make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=7)
        units = 10.0 ** (np.arange(10) % 4)  # raw features come in mixed units
        x = (x * units).astype(np.float32)
        y = y.astype(np.float32)
        parts = _split(len(y), 303)
    elif data == "synth":
        from sklearn.datasets import make_classification

        x, y = make_classification(n_samples=3200, n_features=20, n_informative=12,
                                   n_redundant=4, n_classes=4, n_clusters_per_class=2,
                                   class_sep=1.2, flip_y=0.0, random_state=11)
        x = (x * 3.0 + 5.0).astype(np.float32)  # raw: off-centre, wider than standard
        y = y.astype(np.int64)
        parts = _split(len(y), 304, (0.625, 0.1875))
    elif data == "diabetes":
        from sklearn.datasets import load_diabetes

        b = load_diabetes(scaled=False)  # raw units: age in years, bmi, mean blood pressure, ...
        x, y = b.data.astype(np.float32), b.target.astype(np.float32)
        parts = _split(len(y), 305)
    elif data == "waves":
        x, y = _waves(4000, 24, seed=306)
        parts = _split(len(y), 306)
    elif data == "chars":
        from lrdoctor.examples import _data

        tokens = _data.encode_chars(_data.corpus_text(80_000))
        n, seq = len(tokens), 32
        cuts = (0, int(n * 0.9), int(n * 0.95), n)
        out = []
        for a, b in itertools.pairwise(cuts):
            seg = tokens[a:b]
            count = (len(seg) - 1) // seq
            idx = np.arange(count)[:, None] * seq + np.arange(seq + 1)[None, :]
            win = seg[idx]
            out += [win[:, :-1].copy(), win[:, 1:].copy()]
        _RAW[data] = tuple(out)
        return _RAW[data]
    else:  # pragma: no cover
        raise KeyError(data)
    out = tuple(a for p in parts for a in (x[p], y[p]))
    _RAW[data] = out
    return out


def _waves(n: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` two-channel signals of ``steps`` samples; the class (0-3) sets channel 0's
    frequency and whether channel 1 leads or lags it. Raw values are in "sensor units"
    (offset 100, amplitude about 30), so unnormalised inputs are a real fault here."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    t = np.arange(steps)[None, :]
    freq = np.where(y % 2 == 0, 0.18, 0.30)[:, None] * (1 + 0.1 * rng.standard_normal((n, 1)))
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    lag = np.where(y < 2, 0.9, -0.9)[:, None]
    a = np.sin(2 * np.pi * freq * t + phase)
    b = np.sin(2 * np.pi * freq * t + phase + lag)
    noise = 1.0 * rng.standard_normal((n, steps, 2))
    x = np.stack([a, b], -1) + noise
    x = 100.0 + 30.0 * x * np.array([1.0, 0.5])
    return x.reshape(n, -1).astype(np.float32), y.astype(np.int64)


_DATA_OF = {"cancer-mlp": "cancer", "digits-cnnbn": "digits", "mnist1d-cnn": "mnist1d",
            "mnist1d-gru": "mnist1d", "charlm-tf": "chars", "friedman-reg": "friedman",
            "synth-resnet": "synth", "digits-wide": "digits", "digits-deep": "digits",
            "diabetes-reg": "diabetes", "waves-lstm": "waves", "digits-vit": "digits"}


def _standardize(xtr: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu = xtr.mean(0, keepdims=True)
    sd = xtr.std(0, keepdims=True)
    sd = np.where(sd < 1e-8, 1.0, sd)
    return [((a - mu) / sd).astype(np.float32) for a in (xtr, *others)]


def _arrays(name: str, normalize_inputs: bool, input_scale: float) -> tuple[np.ndarray, ...]:
    fam = _family(name)
    xtr, ytr, xva, yva, xte, yte = _raw(_DATA_OF[name])
    if fam.task == "lm":
        if not normalize_inputs:
            raise unsupported("normalize_inputs", "charlm-tf's inputs are tokens")
        if input_scale != 1.0:
            raise unsupported("input_scale", "charlm-tf's inputs are tokens")
        return xtr, ytr, xva, yva, xte, yte
    if normalize_inputs:
        xtr, xva, xte = _standardize(xtr, xva, xte)
    if fam.task == "regression":  # targets standardised with the training split's statistics
        mu, sd = float(ytr.mean()), float(ytr.std())
        ytr, yva, yte = ((v - mu) / sd for v in (ytr, yva, yte))
    if input_scale != 1.0:
        xtr, xva, xte = (a * np.float32(input_scale) for a in (xtr, xva, xte))
    if name == "mnist1d-gru":  # 40 values -> 20 steps of 2
        xtr, xva, xte = (a.reshape(len(a), 20, 2) for a in (xtr, xva, xte))
    if name == "waves-lstm":  # 48 values -> 24 steps of 2 channels
        xtr, xva, xte = (a.reshape(len(a), 24, 2) for a in (xtr, xva, xte))
    return xtr, ytr, xva, yva, xte, yte


def _tensors(*arrays: np.ndarray) -> tuple[Any, ...]:
    out = []
    for a in arrays:
        t = torch.as_tensor(np.ascontiguousarray(a))
        out.append(t.float() if t.is_floating_point() else t.long())
    return tuple(out)


def make_data(name: str, seed: int, *, label_noise: float = 0.0, normalize_inputs: bool = True,
              shuffle: bool = True, input_scale: float = 1.0, n_train: int | None = None,
              train_noise: float = 0.0) -> tuple[Any, Any, Any, Any]:
    """``(train_x, train_y, val_x, val_y)`` tensors of family ``name``; see the module docstring."""
    fam = _family(name)
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
    if not (math.isfinite(input_scale) and input_scale > 0):
        raise ValueError(f"input_scale must be a positive number, got {input_scale}")
    xtr, ytr, xva, yva, _, _ = _arrays(name, normalize_inputs, input_scale)
    if n_train is not None:
        if not 1 <= int(n_train) <= len(ytr):
            raise ValueError(f"n_train must be in [1, {len(ytr)}], got {n_train}")
        xtr, ytr = xtr[:int(n_train)], ytr[:int(n_train)]
    rng = np.random.default_rng(10_000 + seed)
    if label_noise:
        if fam.task == "lm":
            raise unsupported("label_noise", "charlm-tf's targets are the next characters")
        flip = rng.random(len(ytr)) < label_noise
        ytr = ytr.copy()
        if fam.task == "regression":
            ytr[flip] = rng.standard_normal(int(flip.sum())).astype(ytr.dtype)
        else:
            ytr[flip] = rng.integers(0, fam.classes, int(flip.sum()))
    if train_noise:
        if fam.task == "lm":
            raise unsupported("train_noise", "charlm-tf's inputs are tokens")
        xtr = (xtr + train_noise * rng.standard_normal(xtr.shape)).astype(np.float32)
    if not shuffle and fam.task != "lm":
        order = np.argsort(ytr, kind="stable")
        xtr, ytr = xtr[order], ytr[order]
    return _tensors(xtr, ytr, xva, yva)  # type: ignore[return-value]


def make_test(name: str, seed: int, *, eval_shift: float = 0.0, normalize_inputs: bool = True,
              input_scale: float = 1.0) -> tuple[Any, Any]:
    """``(test_x, test_y)`` of family ``name``, shifted by ``eval_shift`` (module docstring)."""
    fam = _family(name)
    xtr, _, _, _, xte, yte = _arrays(name, normalize_inputs, input_scale)
    if eval_shift:
        rng = np.random.default_rng(20_000 + seed)
        if fam.task == "lm":
            if not 0 < eval_shift <= 1:
                raise ValueError(f"eval_shift for charlm-tf is a fraction in (0, 1], got {eval_shift}")
            xte = xte.copy()
            hit = rng.random(xte.shape) < eval_shift
            xte[hit] = rng.integers(0, fam.classes, int(hit.sum()))
        else:
            sd = xtr.reshape(len(xtr), -1).std(0).reshape(xtr.shape[1:])
            sign = np.where(rng.random(xtr.shape[1:]) < 0.5, -1.0, 1.0)
            xte = (xte + eval_shift * sd * sign).astype(np.float32)
    return _tensors(xte, yte)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- models
def _act(name: str) -> Any:
    acts = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "tanh": nn.Tanh,
            "sigmoid": nn.Sigmoid, "identity": nn.Identity}
    if name not in acts:
        raise unsupported("activation", f"must be one of {sorted(acts)}, got {name!r}")
    return acts[name]()


class _OutputActivation:
    """Builds the module applied to a model's output (the mismatch faults)."""

    @staticmethod
    def build(name: str | None) -> Any:
        if name is None or name == "none":
            return None
        table = {"softmax": lambda: nn.Softmax(dim=-1), "log_softmax": lambda: nn.LogSoftmax(-1),
                 "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}
        if name not in table:
            raise unsupported("output_activation", f"must be None or one of {sorted(table)}, "
                              f"got {name!r}")
        return table[name]()


_INITS = ("default", "xavier", "kaiming", "huge", "large", "tiny", "zeros", "dead", "dead-mild")


def _init(model: Any, init: str) -> None:
    if init not in _INITS:
        raise unsupported("init", f"must be one of {', '.join(_INITS)}, got {init!r}")
    if init == "default":
        return
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d)
    with torch.no_grad():
        for m in model.modules():
            weights = []
            if isinstance(m, kinds):
                weights = [m.weight]
                biases = [m.bias] if m.bias is not None else []
            elif isinstance(m, (nn.GRU, nn.LSTM)):
                weights = [p for n, p in m.named_parameters() if n.startswith("weight")]
                biases = [p for n, p in m.named_parameters() if n.startswith("bias")]
            if not weights:
                continue
            for w in weights:
                if init == "xavier":
                    nn.init.xavier_uniform_(w)
                elif init == "kaiming":
                    nn.init.kaiming_normal_(w, nonlinearity="relu")
                elif init == "huge":
                    nn.init.normal_(w, 0.0, 3.0)
                elif init == "large":
                    w.mul_(4.0)
                elif init == "tiny":
                    w.mul_(1e-3)
                elif init == "zeros":
                    w.zero_()
            for b in biases:
                if init in ("dead", "dead-mild"):
                    b.fill_(-3.0 if init == "dead" else -1.0)
                elif init in ("xavier", "kaiming", "huge", "zeros"):
                    b.zero_()


def _mlp_layers(n_in: int, width: int, depth: int, activation: str, dropout: float) -> list[Any]:
    layers: list[Any] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), _act(activation)]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return layers


def _build(name: str, width: int, depth: int, activation: str, dropout: float) -> Any:
    fam = FAMILIES[name]
    if name in ("cancer-mlp", "friedman-reg", "digits-wide", "digits-deep", "diabetes-reg"):
        n_in = {"cancer-mlp": 30, "friedman-reg": 10, "diabetes-reg": 10}.get(name, 64)
        return nn.Sequential(*_mlp_layers(n_in, width, depth, activation, dropout),
                             nn.Linear(width, fam.classes))
    if name == "digits-cnnbn":
        c = width
        layers: list[Any] = [nn.Unflatten(1, (1, 8, 8))]
        c_in = 1
        for _ in range(depth):
            layers += [nn.Conv2d(c_in, c * 2 if c_in > 1 else c, 3, padding=1)]
            c_out = layers[-1].out_channels
            layers += [nn.BatchNorm2d(c_out), _act(activation)]
            c_in = c_out
        layers += [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c_in * 16, 64), _act(activation)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(64, fam.classes))
        return nn.Sequential(*layers)
    if name == "mnist1d-cnn":
        layers = [nn.Unflatten(1, (1, 40))]
        c_in, n = 1, 40
        for i in range(depth):
            k = 5 if i == 0 else 3
            layers += [nn.Conv1d(c_in, width, k, stride=2, padding=1), _act(activation)]
            n = (n + 2 - k) // 2 + 1
            c_in = width
        layers.append(nn.Flatten())
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width * n, fam.classes))
        return nn.Sequential(*layers)
    if name == "mnist1d-gru":
        return GRUClassifier(width, depth, fam.classes, activation, dropout)
    if name == "synth-resnet":
        return ResMLP(20, width, depth, fam.classes, activation, dropout)
    if name == "charlm-tf":
        return TinyTransformer(fam.classes, width, depth, activation, dropout)
    if name == "waves-lstm":
        return LSTMClassifier(width, depth, fam.classes, activation, dropout)
    if name == "digits-vit":
        return PatchTransformer(fam.classes, width, depth, activation, dropout)
    raise KeyError(name)  # pragma: no cover


class GRUClassifier(nn.Module):
    """GRU over the sequence; the last hidden state, through the activation, to a linear head."""

    def __init__(self, width: int, depth: int, classes: int, activation: str, dropout: float):
        super().__init__()
        self.gru = nn.GRU(2, width, num_layers=depth, batch_first=True,
                          dropout=dropout if depth > 1 else 0.0)
        self.act = _act(activation)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(self.drop(self.act(out[:, -1])))

class LSTMClassifier(nn.Module):
    """LSTM over 2-channel signals; the mean of the hidden states, through the activation, to a
    linear head."""

    def __init__(self, width: int, depth: int, classes: int, activation: str, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(2, width, num_layers=depth, batch_first=True,
                            dropout=dropout if depth > 1 else 0.0)
        self.act = _act(activation)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(self.drop(self.act(out.mean(1))))


class PatchTransformer(nn.Module):
    """An 8x8 image as 16 patches of 2x2 -> linear embedding + position -> pre-norm encoder
    -> mean over patches -> LayerNorm -> linear head."""

    def __init__(self, classes: int, width: int, depth: int, activation: str, dropout: float):
        super().__init__()
        self.embed = nn.Linear(4, width)
        self.pos = nn.Parameter(torch.randn(16, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 2 if width % 2 == 0 else 1, 2 * width,
                                           dropout=dropout, activation=_act(activation),
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img = x.reshape(len(x), 4, 2, 4, 2).permute(0, 1, 3, 2, 4)  # rows, cols of 2x2 patches
        h = self.embed(img.reshape(len(x), 16, 4)) + self.pos
        return self.head(self.norm(self.blocks(h).mean(1)))


class ResMLP(nn.Module):
    """x -> Linear -> [h + Linear(act(Linear(h)))] x depth -> act -> Linear."""

    def __init__(self, n_in: int, width: int, depth: int, classes: int, activation: str,
                 dropout: float):
        super().__init__()
        self.stem = nn.Linear(n_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), _act(activation),
                          *([nn.Dropout(dropout)] if dropout else []),
                          nn.Linear(width, width))
            for _ in range(depth))
        self.act = _act(activation)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(self.act(h))

class TinyTransformer(nn.Module):
    """A pre-norm causal transformer over characters; logits (B, T, V)."""

    def __init__(self, vocab: int, width: int, depth: int, activation: str, dropout: float):
        super().__init__()
        seq = 32
        self.embed = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.randn(seq, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 2 if width % 2 == 0 else 1, 2 * width, dropout=dropout,
                                           activation=_act(activation), batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        self.register_buffer("mask", torch.triu(torch.full((seq, seq), -math.inf), 1),
                             persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        h = self.embed(tokens) + self.pos[:t]
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(h))


def _with_output(model: Any, output_activation: str | None) -> Any:
    out = _OutputActivation.build(output_activation)
    return model if out is None else nn.Sequential(model, out)


def make_model(name: str, seed: int, *, init: str = "default", activation: str = "relu",
               output_activation: str | None = None, dropout: float = 0.0,
               width: int | None = None, depth: int | None = None) -> Any:
    """A fresh network of family ``name`` drawn from ``seed``; see the module docstring."""

    fam = _family(name)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    w = fam.width if width is None else int(width)
    d = fam.depth if depth is None else int(depth)
    if w < 1 or d < 1:
        raise ValueError(f"width and depth must be >= 1, got width={w}, depth={d}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build(name, w, d, activation, dropout)
        _init(model, init)
    return _with_output(model, output_activation)


def loss_fn(name: str, *, label_smoothing: float = 0.0) -> Any:
    """The family's training loss: cross-entropy (per position for ``lm``) or MSE."""

    fam = _family(name)
    if fam.task == "regression":
        if label_smoothing:
            raise unsupported("label_smoothing", "friedman-reg is a regression")

        def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return nn.functional.mse_loss(out.reshape(-1), y.reshape(-1))

        return mse
    ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if fam.task == "lm":
        def seq_ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return ce(out.reshape(-1, out.shape[-1]), y.reshape(-1))

        return seq_ce
    return ce


def evaluate(name: str, model: Any, val_x: Any, val_y: Any, *,
             prefix: str = "val_") -> dict[str, float]:
    """Mean loss (and accuracy) of ``model`` on ``(val_x, val_y)``, in eval mode, in chunks."""

    fam = _family(name)
    lf = loss_fn(name)
    was = model.training
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    try:
        with torch.no_grad():
            for i in range(0, len(val_x), 1024):
                xb, yb = val_x[i:i + 1024], val_y[i:i + 1024]
                out = model(xb)
                n = yb.numel()
                loss_sum += float(lf(out, yb)) * n
                if fam.task != "regression":
                    correct += int((out.argmax(-1) == yb).sum())
                total += n
    finally:
        model.train(was)
    result = {f"{prefix}loss": loss_sum / total}
    if fam.task != "regression":
        result[f"{prefix}accuracy"] = correct / total
    return result


def time_family(name: str, seed: int = 0) -> dict[str, float]:
    """Train one default run of ``name`` (one thread) and return seconds and final metrics."""
    import time


    fam = _family(name)
    torch.set_num_threads(1)
    xtr, ytr, xva, yva = make_data(name, seed)
    model = make_model(name, seed)
    lf = loss_fn(name)
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=fam.lr),
           "momentum": lambda p: torch.optim.SGD(p, lr=fam.lr, momentum=0.9),
           "adam": lambda p: torch.optim.Adam(p, lr=fam.lr),
           "adamw": lambda p: torch.optim.AdamW(p, lr=fam.lr),
           "rmsprop": lambda p: torch.optim.RMSprop(p, lr=fam.lr)}[fam.optimizer](
        model.parameters())
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(fam.epochs):
        order = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(order), fam.batch_size):
            idx = order[i:i + fam.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = lf(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, **evaluate(name, model, xva, yva)}


if __name__ == "__main__":  # python benchmarks/_families.py: time every family
    for n in names():
        r = time_family(n)
        print(f"{n:14s} " + " ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
