"""Plateau reduction and early stopping as pure functions of an explicit state.

>>> from lrdoctor.plateau import PlateauConfig, update
>>> cfg = PlateauConfig(monitor="val_loss", patience=1, factor=0.5)
>>> state, lrs = cfg.initial_state(), (1.0,)
>>> for v in [1.0, 1.0, 1.0]:
...     out = update(cfg, state, v, lrs)
...     state, lrs = out.state, out.lrs
>>> lrs
(0.5,)

``convention='torch'`` (default) reproduces ``torch.optim.lr_scheduler.ReduceLROnPlateau``
(reduce after ``patience + 1`` bad evaluations), ``convention='keras'`` the Keras 3 callback
(reduce at the ``patience``-th). The framework adapters (``lrdoctor.torch.PlateauLR``,
``lrdoctor.keras.ReduceLROnPlateau``/``EarlyStopping``) are thin shells around :func:`update`
and :func:`early_stop_update`.
"""

from lrdoctor.plateau._early_stop import (
    EarlyStopConfig,
    EarlyStopOutcome,
    EarlyStopState,
    early_stop_update,
)
from lrdoctor.plateau._schedule import warmup_end
from lrdoctor.plateau._state import MAX_WORDS, MIN_WORDS, PlateauConfig, PlateauState, infer_mode
from lrdoctor.plateau._update import PlateauOutcome, is_better, reduce_lrs, update

__all__ = [
    "MAX_WORDS",
    "MIN_WORDS",
    "EarlyStopConfig",
    "EarlyStopOutcome",
    "EarlyStopState",
    "PlateauConfig",
    "PlateauOutcome",
    "PlateauState",
    "early_stop_update",
    "infer_mode",
    "is_better",
    "reduce_lrs",
    "update",
    "warmup_end",
]
