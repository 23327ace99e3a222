"""Resuming a Keras fit from a ``.keras`` checkpoint keeps the plateau decisions and the journal.

Keras saves neither callbacks nor their counters with a model. An uninterrupted fit is compared
with the same fit split in two: a first fit that checkpoints every epoch (``ModelCheckpoint``,
i.e. ``model.save``) and dies at the start of epoch k, or simply ends after k epochs and is
saved; then, as a new process would, ``keras.saving.load_model``, new callback objects built
with the same arguments, ``fit(initial_epoch=k)``. The learning rate of every optimizer step,
the reduction epochs, the early-stop epoch, the best weights restored at the end and every
journal entry must be the same.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from lrdoctor.errors import PlateauError
from lrdoctor.journal import Journal
from lrdoctor.keras import EarlyStopping, ReduceLROnPlateau

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EPOCHS = 20
STEPS = 4  # optimizer steps an epoch
#: warm-up ends after epoch 2 (4 steps an epoch), the cosine restarts during epoch 8
SPEC = "warmup(8) >> sgdr(0.01, end=0.001, period=24)"


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, :1] + rng.normal(size=(96, 1))).astype("float32")
    return x[:64], y[:64], x[64:], y[64:]


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=0.01, momentum=0.9), loss="mse")
    return model


def _callbacks(journal, spec, state_dir=None, *, factor=0.5, restore=True, **extra):
    """What a script builds, with the same arguments in every process. Without ``state_dir``
    the state files sit next to the journal file."""
    paths = {} if state_dir is None else {"plateau": {"state_path": state_dir / "plateau.json"},
                                          "stop": {"state_path": state_dir / "stop.json"}}
    plateau = ReduceLROnPlateau(monitor="val_loss", factor=factor, patience=1, cooldown=1,
                                min_delta=1e-3, schedule=spec, journal=journal,
                                **{**paths.get("plateau", {}), **extra})
    stop = EarlyStopping(monitor="val_loss", patience=4, min_delta=1e-3,
                         restore_best_weights=restore, journal=journal,
                         **{**paths.get("stop", {}), **extra})
    return plateau, stop


def _fit(model, callbacks, epochs, initial_epoch=0, more=()):
    x, y, xv, yv = _data()
    lrs = []
    record = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: lrs.append(
        float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))
    hist = model.fit(x, y, batch_size=16, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
                     validation_data=(xv, yv), verbose=0, callbacks=[record, *callbacks, *more])
    return lrs, hist


def _entries(path):
    return [e.to_dict() for e in Journal.load(path)]


def _whole(tmp_path, spec):
    model = _model()
    plateau, stop = _callbacks(tmp_path / "whole.jsonl", spec)
    lrs, hist = _fit(model, [plateau, stop], EPOCHS)
    return model, lrs, hist, stop


class _Crash(keras.callbacks.Callback):
    """Kills the fit at the start of epoch ``at`` (0-based), as a preempted job dies."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt("preempted")


def _split(tmp_path, spec, k, state_dir=None, crash_at=None, restore=True):
    """A fit that saves a checkpoint every epoch and dies at the start of epoch ``crash_at``
    (default k) — or, with ``crash_at=-1``, fits k epochs and is saved; then, as a new process
    would: load the checkpoint of epoch k, build new callbacks with the same arguments, fit on
    from epoch k."""
    journal = tmp_path / "parts.jsonl"
    model = _model()
    first = _callbacks(journal, spec, state_dir, restore=restore)
    if crash_at == -1:
        _fit(model, first, k)
        model.save(tmp_path / f"ckpt-{k}.keras")
    else:
        save = keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch}.keras"))
        try:  # dies, or stops early first (an older checkpoint: its state files are then ahead)
            _fit(model, first, EPOCHS, more=[save, _Crash(crash_at or k)])
        except KeyboardInterrupt:
            pass
    del model
    restored = keras.saving.load_model(tmp_path / f"ckpt-{k}.keras")
    plateau, stop = _callbacks(journal, spec, state_dir, restore=restore)
    lrs, hist = _fit(restored, [plateau, stop], EPOCHS, initial_epoch=k)
    return restored, lrs, hist.history["learning_rate"], stop


def _reduction_epochs(path):
    return [e["epoch"] for e in _entries(path) if e["cause"] == "plateau"]


@pytest.mark.parametrize("spec", [None, SPEC], ids=["plain", "schedule"])
@pytest.mark.parametrize("how", ["journal", "state_path", "older-checkpoint", "save-after-fit"])
def test_resume_from_a_keras_checkpoint_matches_an_uninterrupted_fit(tmp_path, spec, how):
    k = 6
    model, lrs, hist, stop = _whole(tmp_path, spec)
    state_dir = tmp_path / "state" if how == "state_path" else None
    # older-checkpoint: the state files and the journal run two epochs ahead of the model;
    # save-after-fit: the first fit ends, so restore_best_weights would put the best weights
    # back before the save (Keras' semantics, not a resume): that run goes without
    crash_at = {"older-checkpoint": k + 2, "save-after-fit": -1}.get(how, k)
    restore = how != "save-after-fit"
    restored, parts_lrs, epoch_lrs, stop2 = _split(tmp_path, spec, k, state_dir, crash_at, restore)
    whole = _reduction_epochs(tmp_path / "whole.jsonl")
    assert any(e <= k for e in whole) and any(e > k for e in whole)  # reductions either side
    assert k <= stop.stopped_epoch < EPOCHS - 1          # the stop (0-based epoch) comes after it
    assert parts_lrs == lrs[STEPS * k:]                   # every step's lr after the resume
    assert epoch_lrs == hist.history["learning_rate"][k:]
    assert (stop2.stopped_epoch, stop2.best_epoch) == (stop.stopped_epoch, stop.best_epoch)
    assert _reduction_epochs(tmp_path / "parts.jsonl") == whole
    assert _entries(tmp_path / "parts.jsonl") == _entries(tmp_path / "whole.jsonl")
    if restore:
        for a, b in zip(restored.get_weights(), model.get_weights()):  # the best weights, restored
            np.testing.assert_array_equal(a, b)


def _checkpoint(tmp_path, k, journal="first.jsonl", **kw):
    """A first run of k epochs that ends in a checkpoint; returns the checkpoint's path."""
    model = _model()
    _fit(model, _callbacks(tmp_path / journal, None, **kw), k,
         more=[keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch}.keras"))])
    return tmp_path / f"ckpt-{k}.keras"


def test_state_dict_is_plain_json_and_resumes_without_files(tmp_path):
    """The explicit pair: keep ``state_dict()`` in your own checkpoint, ``load_state_dict`` it."""
    _trained, lrs, _hist, stop = _whole(tmp_path, SPEC)
    first = _model()
    # no state file; the best weights are not part of a JSON state (see the next test)
    callbacks = _callbacks(None, SPEC, state_path=False, restore=False)
    _fit(first, callbacks, 6, more=[keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.keras"))])
    states = [json.loads(json.dumps(cb.state_dict(), allow_nan=False)) for cb in callbacks]
    assert states[0]["epoch"] == 6 and states[0]["step"] == 24 and states[0]["scale"] < 1
    restored = keras.saving.load_model(tmp_path / "ckpt.keras")
    saved = restored.optimizer._learning_rate  # the plateau factor travels with the model too
    assert float(keras.ops.convert_to_numpy(saved.scale)) == states[0]["scale"]
    plateau, stop2 = _callbacks(None, SPEC, state_path=False, restore=False)
    plateau.load_state_dict(states[0])
    stop2.load_state_dict(states[1])
    parts, _ = _fit(restored, [plateau, stop2], EPOCHS, initial_epoch=6)
    assert parts == lrs[STEPS * 6:]
    assert stop2.stopped_epoch == stop.stopped_epoch
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("whole")) == [
        "ckpt.keras"]  # state_path=False: no file written


def test_best_weights_need_a_state_file(tmp_path):
    first = _model()
    callbacks = _callbacks(None, None, state_path=False)
    _fit(first, callbacks, 3)
    stop = _callbacks(None, None, state_path=False)[1]
    stop.load_state_dict(callbacks[1].state_dict())
    with pytest.raises(PlateauError, match="restore_best_weights=True.*best weights of epoch"):
        _fit(first, [stop], 5, initial_epoch=3)


def test_a_changed_setting_is_an_error_naming_it(tmp_path):
    ckpt = _checkpoint(tmp_path, 3)
    plateau, _stop = _callbacks(tmp_path / "first.jsonl", None, factor=0.1)
    with pytest.raises(PlateauError, match=r"factor=0\.5, but this one has factor=0\.1.*"
                                           r"resume=False"):
        _fit(keras.saving.load_model(ckpt), [plateau], 5, initial_epoch=3)


def test_a_model_that_is_not_the_checkpoint_is_an_error(tmp_path):
    _checkpoint(tmp_path, 3)
    plateau, _stop = _callbacks(tmp_path / "first.jsonl", None)
    with pytest.raises(PlateauError, match="optimizer step 12 .* the model is at step 0"):
        _fit(_model(), [plateau], 5, initial_epoch=3)  # a new model, not the checkpoint


def test_a_state_file_behind_the_checkpoint_is_an_error(tmp_path):
    ckpt = _checkpoint(tmp_path, 3)
    state = tmp_path / "first.plateau-val_loss.state.jsonl"
    state.write_text("".join(state.read_text().splitlines(keepends=True)[:2]))  # epochs 1-2
    plateau, _ = _callbacks(tmp_path / "first.jsonl", None)
    with pytest.raises(PlateauError, match="state after epochs 1–2, not after epoch 3.*before "
                                           "ModelCheckpoint"):
        _fit(keras.saving.load_model(ckpt), [plateau], 5, initial_epoch=3)


def test_a_missing_state_file_is_an_error_and_resume_false_starts_afresh(tmp_path):
    ckpt = _checkpoint(tmp_path, 3, journal="j.jsonl")
    plateau = ReduceLROnPlateau(monitor="val_loss", state_path=tmp_path / "nowhere.json")
    with pytest.raises(PlateauError, match="nowhere.json does not exist.*initial_epoch=3"):
        _fit(keras.saving.load_model(ckpt), [plateau], 5, initial_epoch=3)
    plateau = ReduceLROnPlateau(monitor="val_loss", state_path=tmp_path / "nowhere.json",
                                resume=False)
    _fit(keras.saving.load_model(ckpt), [plateau], 5, initial_epoch=3)
    assert plateau.evaluations == 2  # counted afresh from epoch 4
    assert [s["epoch"] for s in _snapshots(tmp_path / "nowhere.json")] == [4, 5]


def test_wrong_kind_and_resume_true_without_state(tmp_path):
    with pytest.raises(PlateauError, match="is not a ReduceLROnPlateau state"):
        ReduceLROnPlateau().load_state_dict(EarlyStopping().state_dict())
    with pytest.raises(PlateauError, match="resume must be"):
        ReduceLROnPlateau(resume="yes")
    ckpt = _checkpoint(tmp_path, 2)
    with pytest.raises(PlateauError, match="resume=True but there is no state"):
        _fit(keras.saving.load_model(ckpt), [EarlyStopping(resume=True)], 3, initial_epoch=2)


def test_resuming_without_any_state_warns(tmp_path):
    ckpt = _checkpoint(tmp_path, 2)
    with pytest.warns(UserWarning, match="resumes at epoch 3 without its saved state.*schedule="):
        _fit(keras.saving.load_model(ckpt), [ReduceLROnPlateau(schedule=SPEC)], 3, initial_epoch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # afresh on purpose: no warning
        _fit(keras.saving.load_model(ckpt), [ReduceLROnPlateau(schedule=SPEC, resume=False)], 3,
             initial_epoch=2)


def _snapshots(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_fresh_run_ignores_a_stale_state_file_and_keeps_the_journal(tmp_path):
    journal = tmp_path / "j.jsonl"
    _fit(_model(), _callbacks(journal, None, factor=0.1), 6)  # an old run, other settings
    old = Journal.load(journal).entries
    assert old
    _fit(_model(), _callbacks(tmp_path / "clean.jsonl", None), 8)
    _fit(_model(), _callbacks(journal, None), 8)  # a fresh run on the same files: no error
    new = Journal.load(journal).entries
    assert new[:len(old)] == old                   # appended to, never cut
    assert [e.to_dict() for e in new[len(old):]] == _entries(tmp_path / "clean.jsonl")
    snaps = _snapshots(tmp_path / "j.plateau-val_loss.state.jsonl")
    assert [s["epoch"] for s in snaps] == list(range(1, len(snaps) + 1))  # the new run's only
    assert {s["settings"]["factor"] for s in snaps} == {0.5}
    assert snaps[0]["journal_start"] == len(old)


def test_a_torn_last_line_is_dropped(tmp_path):
    from lrdoctor.keras._state import StateFile

    path = tmp_path / "s.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert [s["epoch"] for s in StateFile(path).read()] == [1, 2]
    path.write_text('{"epoch": 1}\ngarbage\n{"epoch": 3}\n')
    with pytest.raises(PlateauError, match="line 2 is not a state snapshot"):
        StateFile(path).read()


def test_the_same_callbacks_continue_in_a_second_fit(tmp_path):
    """No file at all: fit(k) then fit(initial_epoch=k) with the same objects carries on."""
    _trained, lrs, _hist, stop = _whole(tmp_path, SPEC)  # restore_best_weights there: only at the end
    again = _model()
    callbacks = _callbacks(None, SPEC, restore=False)
    first, _ = _fit(again, callbacks, 6)
    second, _ = _fit(again, callbacks, EPOCHS, initial_epoch=6)
    assert first + second == lrs
    assert callbacks[1].stopped_epoch == stop.stopped_epoch


def test_backup_and_restore(tmp_path):
    """Keras' own fault-tolerance flow: the backup sets the initial epoch, lrdoctor follows."""
    model, lrs, _hist, stop = _whole(tmp_path, SPEC)
    journal = tmp_path / "parts.jsonl"
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), _callbacks(journal, SPEC),
             EPOCHS, more=[keras.callbacks.BackupAndRestore(str(backup)), _Crash(6)])
    plateau, stop2 = _callbacks(journal, SPEC)
    fresh = _model()
    parts, _ = _fit(fresh, [plateau, stop2], EPOCHS,
                    more=[keras.callbacks.BackupAndRestore(str(backup))])
    assert parts == lrs[STEPS * 6:]
    assert stop2.stopped_epoch == stop.stopped_epoch
    assert _entries(journal) == _entries(tmp_path / "whole.jsonl")
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
