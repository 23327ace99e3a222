"""Keras 3's own callback tests, run in place with lrdoctor's callbacks swapped in.

The installed Keras ships ``early_stopping_test.py`` and ``reduce_lr_on_plateau_test.py``; each
test method is run as Keras wrote it, with the module's ``callbacks.EarlyStopping`` /
``callbacks.ReduceLROnPlateau`` replaced by lrdoctor's drop-ins. The real Keras classes pass all
of them (the first parametrisation checks that, so a change in Keras shows up as such).
"""

from __future__ import annotations

import importlib
import types
import unittest

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from lrdoctor.errors import PlateauError
from lrdoctor.keras import EarlyStopping, ReduceLROnPlateau

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

SUITES = {
    "early_stopping_test": ("EarlyStoppingTest", "EarlyStopping", EarlyStopping),
    "reduce_lr_on_plateau_test": ("ReduceLROnPlateauTest", "ReduceLROnPlateau", ReduceLROnPlateau),
}


def _cases():
    out = []
    for module, (cls_name, _, _) in SUITES.items():
        mod = importlib.import_module(f"keras.src.callbacks.{module}")
        cls = getattr(mod, cls_name)
        out += [(module, name) for name in unittest.TestLoader().getTestCaseNames(cls)]
    return out


def _run(module: str, method: str, *, swap: bool, monkeypatch: pytest.MonkeyPatch) -> unittest.TestResult:
    from keras.src.utils import io_utils

    mod = importlib.import_module(f"keras.src.callbacks.{module}")
    cls_name, attr, ours = SUITES[module]
    if swap:
        swapped = types.SimpleNamespace(**{**vars(mod.callbacks), attr: ours})
        monkeypatch.setattr(mod, "callbacks", swapped)
    result = unittest.TestResult()
    interactive = io_utils.is_interactive_logging_enabled()
    try:
        getattr(mod, cls_name)(method).run(result)
    finally:
        if interactive:
            io_utils.enable_interactive_logging()
    return result


def _problems(result: unittest.TestResult) -> str:
    return "\n".join(text for _, text in result.errors + result.failures)


@pytest.mark.parametrize("module,method", _cases())
def test_keras_own_callback_tests_pass_with_lrdoctor(module, method, monkeypatch):
    result = _run(module, method, swap=True, monkeypatch=monkeypatch)
    assert result.wasSuccessful(), _problems(result)
    assert result.testsRun == 1


def test_the_real_keras_passes_the_same_tests(monkeypatch):
    """The reference: Keras' own classes pass the cases the test above runs on ours."""
    for module, method in [("early_stopping_test", "test_early_stopping"),
                           ("reduce_lr_on_plateau_test", "test_verbose_logging")]:
        result = _run(module, method, swap=False, monkeypatch=monkeypatch)
        assert result.wasSuccessful(), _problems(result)


class _Model:
    def __init__(self):
        self.optimizer = keras.optimizers.SGD(learning_rate=0.1)
        self.stop_training = False
        self.metrics = []

    def get_weights(self):
        return []


@pytest.mark.parametrize("make", [EarlyStopping, ReduceLROnPlateau])
def test_one_element_metric_arrays_are_read_as_numbers_and_monitor_op_is_keras(make):
    """``keras.metrics.F1Score()`` logs shape-(1,) arrays; Keras compares them as numbers."""
    ours, theirs = make(monitor="f1_score", mode="max", patience=1), getattr(keras.callbacks, make.__name__)(
        monitor="f1_score", mode="max", patience=1)
    for cb in (ours, theirs):
        cb.set_model(_Model())
        cb.on_train_begin()
    for epoch, v in enumerate([0.5, 0.6, 0.6, 0.55, 0.4]):
        for cb in (ours, theirs):
            cb.on_epoch_end(epoch, {"f1_score": np.array([v], dtype=np.float32)})
        assert ours.wait == theirs.wait and ours.model.stop_training == theirs.model.stop_training
    assert ours.monitor_op is theirs.monitor_op is keras.ops.greater
    assert float(ours.best) == pytest.approx(float(np.asarray(theirs.best).reshape(())))


def test_a_metric_with_several_values_is_refused_by_name():
    cb = EarlyStopping(monitor="f1_score", mode="max")
    cb.set_model(_Model())
    cb.on_train_begin()
    with pytest.raises(PlateauError, match=r"'f1_score' holds 3 values .*average='macro'"):
        cb.on_epoch_end(0, {"f1_score": np.array([0.1, 0.2, 0.3])})
