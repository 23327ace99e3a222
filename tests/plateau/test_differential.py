"""The pure core against the real peers: torch's ReduceLROnPlateau and Keras 3's callbacks.

Each test drives the real class and :func:`lrdoctor.plateau.update` with the same random metric
sequences (noise, plateaus with exact repeats, quantised accuracies, near-threshold steps; both
modes, rel/abs, cool-down, min_lr, several param groups) and asserts the learning rates are
identical — bit for bit — after every evaluation. Negative metrics in torch ``rel`` mode are the
one documented difference (torch pytorch/pytorch#38622): ``torch_rel_bug=True`` reproduces torch
exactly, and the default fixes it (see ``test_negative_rel_bug_and_fix``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from lrdoctor.plateau import (
    EarlyStopConfig,
    EarlyStopState,
    PlateauConfig,
    early_stop_update,
    update,
)
from tests.plateau._sequences import metric_sequence, plateau_settings

torch = pytest.importorskip("torch")

# Keras' torch backend warns about numpy's copy keyword on every LR read; it is noise here.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

N_TORCH = 5000
N_KERAS = 5000


def _core_torch_run(settings: dict, values: list[float], lrs0: list[float], **extra) -> list[tuple]:
    cfg = PlateauConfig(**settings, **extra)
    state, lrs, out = cfg.initial_state(), tuple(lrs0), []
    for v in values:
        o = update(cfg, state, v, lrs)
        state, lrs = o.state, o.lrs
        out.append(lrs)
    return out


def _torch_run(settings: dict, values: list[float], lrs0: list[float]) -> list[tuple]:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs0]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs0)], lr=lrs0[0])
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **settings)
    out = []
    for v in values:
        sched.step(v)
        out.append(tuple(float(g["lr"]) for g in opt.param_groups))
    return out


def test_core_matches_torch_on_5000_sequences():
    rng = np.random.default_rng(1234)
    mismatches, reduced = [], 0
    for case in range(N_TORCH):
        settings = plateau_settings(rng)
        n_groups = int(rng.integers(1, 3))
        lrs0 = [float(rng.choice([1.0, 0.1, 0.3, 1e-2])) for _ in range(n_groups)]
        if n_groups > 1 and rng.random() < 0.5:
            settings["min_lr"] = [float(rng.choice([0.0, 1e-3, 0.05])) for _ in range(n_groups)]
        values = metric_sequence(rng, int(rng.integers(5, 30)))
        ours = _core_torch_run(settings, values, lrs0)
        theirs = _torch_run(settings, values, lrs0)
        reduced += ours[-1] != tuple(lrs0)
        if ours != theirs:
            mismatches.append((case, settings, values, ours, theirs))
    assert not mismatches, mismatches[:2]
    assert reduced > N_TORCH // 3  # the comparison is not vacuous


def test_core_with_bug_flag_matches_torch_on_negative_metrics():
    rng = np.random.default_rng(99)
    for _ in range(500):
        settings = plateau_settings(rng)
        values = metric_sequence(rng, int(rng.integers(5, 25)), negative=True)
        ours = _core_torch_run(settings, values, [1.0], torch_rel_bug=True)
        assert ours == _torch_run(settings, values, [1.0])
        if settings["threshold_mode"] == "abs":  # the fix only concerns rel mode
            assert _core_torch_run(settings, values, [1.0]) == ours


def test_negative_rel_bug_and_fix():
    """min mode, rel threshold 0.1, metric -1.0 then -0.95 (worse!) for several epochs.

    torch compares with ``best * (1 - 0.1) = -0.9``: -0.95 < -0.9 counts as an improvement, so
    the LR is never reduced although the metric got worse. Ours compares with
    ``best - 0.1 * |best| = -1.1``: -0.95 is bad and the LR is reduced after patience + 1."""
    settings = {"mode": "min", "threshold": 0.1, "threshold_mode": "rel", "patience": 1}
    values = [-1.0] + [-0.95] * 4
    assert _torch_run(settings, values, [1.0])[-1] == (1.0,)
    ours = _core_torch_run(settings, values, [1.0])
    assert ours[-1][0] < 1.0
    assert _core_torch_run(settings, values, [1.0], torch_rel_bug=True)[-1] == (1.0,)
    # real improvements on negative metrics still count: -1.0 -> -1.2 beats -1.1
    assert _core_torch_run(settings, [-1.0, -1.2, -1.2], [1.0])[1] == (1.0,)


# -- Keras 3 -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


class _Model:
    """Just what the callbacks read: an optimizer, stop_training and weights."""

    def __init__(self, keras, lr):
        self.optimizer = keras.optimizers.SGD(learning_rate=lr)
        self.stop_training = False
        self.metrics = []

    def get_weights(self):
        return []

    def set_weights(self, w):
        pass


_MODELS: dict = {}


def _keras_rlrop_run(keras, settings, values, lr0):
    cb = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", **settings)
    model = _MODELS.get("m")
    if model is None:  # one optimizer for all cases: building Keras variables is the slow part
        model = _MODELS["m"] = _Model(keras, lr0)
    model.optimizer.learning_rate = lr0
    model.stop_training = False
    cb.set_model(model)
    cb.on_train_begin()
    out = []
    for epoch, v in enumerate(values):
        cb.on_epoch_end(epoch, {"val_loss": v})
        out.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    return out


def _core_keras_run(settings, values, lr0):
    s = dict(settings)
    cfg = PlateauConfig(monitor="val_loss", convention="keras", threshold=s.pop("min_delta"),
                        threshold_mode="abs", **s)
    state, lrs, out = cfg.initial_state(), (float(np.float32(lr0)),), []
    for v in values:
        o = update(cfg, state, v, lrs)
        state = o.state
        lrs = tuple(float(np.float32(x)) for x in o.lrs)  # the optimizer stores float32
        out.append(lrs[0])
    return out


def test_core_matches_keras_reduce_lr_on_plateau_on_5000_sequences(keras):
    rng = np.random.default_rng(4321)
    mismatches, reduced = [], 0
    for case in range(N_KERAS):
        settings = plateau_settings(rng, keras=True)
        lr0 = float(rng.choice([1.0, 0.1, 0.3, 1e-2]))
        values = metric_sequence(rng, int(rng.integers(5, 25)))
        ours = _core_keras_run(settings, values, lr0)
        theirs = _keras_rlrop_run(keras, settings, values, lr0)
        reduced += ours[-1] != float(np.float32(lr0))
        if ours != theirs:
            mismatches.append((case, settings, values, ours, theirs))
    assert not mismatches, mismatches[:2]
    assert reduced > N_KERAS // 3


def test_core_matches_keras_early_stopping(keras):
    rng = np.random.default_rng(77)
    for _ in range(2000):
        mode = str(rng.choice(["min", "max"]))
        kw = {
            "mode": mode,
            "patience": int(rng.integers(0, 5)),
            "min_delta": float(rng.choice([0.0, 1e-4, 1e-2])),
            "start_from_epoch": int(rng.integers(0, 3)),
            "baseline": None if rng.random() < 0.6 else float(rng.uniform(0.2, 2.0)),
        }
        values = metric_sequence(rng, int(rng.integers(3, 25)))
        cb = keras.callbacks.EarlyStopping(monitor="val_loss", **kw)
        model = _Model(keras, 0.1)
        cb.set_model(model)
        cb.on_train_begin()
        cfg = EarlyStopConfig(monitor="val_loss", **kw)
        state = EarlyStopState()
        for epoch, v in enumerate(values):
            cb.on_epoch_end(epoch, {"val_loss": v})
            o = early_stop_update(cfg, state, epoch, v)
            state = o.state
            assert model.stop_training == state.stopped, (kw, values, epoch)
            assert cb.wait == state.wait
            if model.stop_training:
                break


def test_patience_conventions_differ_by_one():
    """torch reduces after patience + 1 bad evaluations, Keras at the patience-th."""
    values = [1.0] + [1.0] * 5
    torch_lrs = _core_torch_run({"patience": 2, "factor": 0.5}, values, [1.0])
    cfg = PlateauConfig(patience=2, factor=0.5, convention="keras", threshold=0.0, threshold_mode="abs")
    state, lrs, keras_lrs = cfg.initial_state(), (1.0,), []
    for v in values:
        o = update(cfg, state, v, lrs)
        state, lrs = o.state, o.lrs
        keras_lrs.append(lrs[0])
    first_torch = next(i for i, l in enumerate(torch_lrs) if l[0] < 1)
    first_keras = next(i for i, l in enumerate(keras_lrs) if l < 1)
    assert (first_torch, first_keras) == (3, 2)


def test_warnings_are_not_raised_by_peers():
    # the peers are driven in a loop; make sure none of the runs above silently warned about
    # a missing monitor (that would make the comparison vacuous)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _torch_run({"patience": 0}, [1.0, 2.0], [1.0])[-1][0] == pytest.approx(0.1)
    assert math.isclose(_core_torch_run({"patience": 0}, [1.0, 2.0], [1.0])[-1][0], 0.1)
