"""Small example tasks for the CLI, the demo, the doctor's benchmarks and the LR finder's oracle.

>>> from lrdoctor import examples
>>> examples.names()
('digits-mlp', 'digits-cnn', 'mnist1d-conv', 'charlm')

The API (stable; other parts of lrdoctor build on it):

``examples.get(name, *, seed=0, batch_size=None, epochs=None, **overrides) -> Task``
    ``overrides`` are model options (see ``examples.MODEL_OPTIONS[name]``: ``activation``,
    ``init``, ``batchnorm``, ``dropout``, ``softmax_output``, widths...) plus ``n_train``
    (keep the first n training rows) and, for ``charlm``, ``seq_len`` and ``max_chars``.

``Task``
    ``build_model(seed=None)`` a fresh ``nn.Module`` initialised from the seed;
    ``train_loader`` (shuffled, seeded), ``val_loader``, ``test_loader``: fresh
    :class:`ArrayLoader` objects yielding ``(x, y)`` tensors (``loader(split, as_dict=True)``
    yields dicts); ``loss_fn(output, target)``; ``evaluate(model, loader=None) ->
    {"val_loss", "val_accuracy"}`` (``val_loss`` only for ``charlm``); ``metric``
    (``'accuracy'`` or ``'loss'``), ``metric_key``, ``higher_is_better``, ``score(metrics)``;
    ``epochs`` (the default budget), ``steps_per_epoch``; ``data`` (a :class:`Data` of numpy
    arrays ``x_train, y_train, x_val, y_val, x_test, y_test``) and ``with_data(**arrays)`` /
    ``replace(**fields)`` to inject faults: scaled inputs, labels sorted or noisy, other
    activations or initialisations.

``examples.train(task, optimizer, *, epochs=None, model=None, lr=None, scheduler=None,
monitor=None, ...) -> TrainResult``
    A plain loop: ``optimizer`` is an optimizer instance (with ``model=``), a name
    (``'sgd'`` = SGD momentum 0.9, ``'adam'``, ``'adamw'``) with ``lr=``, or a factory.

The tasks:

========== ============================================ ====================== =========
name       data                                         model                  metric
========== ============================================ ====================== =========
digits-mlp scikit-learn digits 8x8 (1077/360/360)        MLP 64-128-64-10       accuracy
digits-cnn the same                                      2 conv + 2 linear      accuracy
mnist1d-   MNIST-1D, generated locally (3000/1000/1000)  3 stride-2 conv1d      accuracy
conv                                                     + linear
charlm     characters of stdlib sources (64-char         2-layer causal         loss
           windows, 90/5/5 split)                        transformer, d=64      (nats)
========== ============================================ ====================== =========

Everything is deterministic by ``seed`` (weights and batch order; splits are fixed), runs on a
CPU in seconds, and touches no network.
"""

from __future__ import annotations

from typing import Any

from lrdoctor.errors import LRDoctorError
from lrdoctor.examples._data import Data
from lrdoctor.examples._options import MODEL_OPTIONS
from lrdoctor.examples._task import ArrayLoader, Task

__all__ = [
    "ArrayLoader", "Data", "MODEL_OPTIONS", "OPTIMIZERS", "Task", "TrainResult", "get",
    "make_optimizer", "names", "train",
]

#: name -> (batch size, epoch budget, metric, reference lrs, description)
_SPECS: dict[str, tuple[int, int, str, dict[str, float], str]] = {
    "digits-mlp": (32, 8, "accuracy", {"sgd": 0.05, "adam": 3e-3},
                   "an MLP on scikit-learn's 8x8 digits"),
    "digits-cnn": (32, 6, "accuracy", {"sgd": 0.05, "adam": 3e-3},
                   "a small CNN on scikit-learn's 8x8 digits"),
    "mnist1d-conv": (64, 10, "accuracy", {"sgd": 0.05, "adam": 1e-2},
                     "the MNIST-1D paper's conv net on locally generated MNIST-1D"),
    "charlm": (32, 2, "loss", {"sgd": 0.3, "adam": 3e-3},
               "a 2-layer character transformer on Python standard-library sources"),
}


def names() -> tuple[str, ...]:
    """The example task names."""
    return tuple(_SPECS)


def __getattr__(attr: str) -> Any:
    # torch-using names load on first use, so `import lrdoctor.examples` stays light
    if attr in ("OPTIMIZERS", "TrainResult", "make_optimizer", "train"):
        from lrdoctor.examples import _train

        return getattr(_train, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def get(name: str, *, seed: int = 0, batch_size: int | None = None, epochs: int | None = None,
        **overrides: Any) -> Task:
    """The example task ``name``; see the module docstring for ``overrides``."""
    from lrdoctor.examples import _data

    if name not in _SPECS:
        raise LRDoctorError(f"unknown example {name!r}; choose one of: {', '.join(_SPECS)}")
    default_batch, default_epochs, metric, lrs, description = _SPECS[name]
    options = dict(MODEL_OPTIONS[name])
    n_train = overrides.pop("n_train", None)
    max_chars = overrides.pop("max_chars", 200_000) if name == "charlm" else None
    unknown = sorted(set(overrides) - set(options))
    if unknown:
        allowed = sorted([*options, "n_train", *(["max_chars"] if name == "charlm" else [])])
        raise LRDoctorError(f"example {name!r} has no option(s) {unknown}; options: {allowed}")
    options.update(overrides)
    if name.startswith("digits"):
        data = _data.digits()
    elif name == "mnist1d-conv":
        data = _data.mnist1d()
    else:
        data = _data.chars(seq_len=int(options["seq_len"]), max_chars=int(max_chars or 200_000))
    if n_train is not None:
        if not 1 <= int(n_train) <= len(data.y_train):
            raise LRDoctorError(f"n_train must be in [1, {len(data.y_train)}], got {n_train}")
        n = int(n_train)
        data = data.replace(x_train=data.x_train[:n], y_train=data.y_train[:n])
    if batch_size is not None and batch_size < 1:
        raise LRDoctorError(f"batch_size must be >= 1, got {batch_size}")
    if epochs is not None and epochs < 0:
        raise LRDoctorError(f"epochs must be >= 0, got {epochs}")
    return Task(name=name, seed=int(seed), data=data, batch_size=batch_size or default_batch,
                epochs=default_epochs if epochs is None else int(epochs), metric=metric,
                model_options=options, description=description, reference_lrs=dict(lrs))
