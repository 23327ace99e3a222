"""Every threshold the doctor's rules use that is a choice (not a definition), in one registry.

Each :class:`Threshold` has its default, a short list of candidate values (what a held-out
scoring harness tries), what it is, and what set it. Rules read the current value through
:data:`T` (``T.FLAT_REL``), so :func:`override` changes every rule at once for the code inside
its ``with`` block (values live in a :class:`contextvars.ContextVar`: threads and asyncio tasks
that did not enter the block keep the defaults).

>>> from lrdoctor.doctor._thresholds import T, override
>>> T.FLAT_REL
0.03
>>> with override(FLAT_REL=0.05):
...     T.FLAT_REL
0.05
>>> T.FLAT_REL
0.03

Provenance in one place: :func:`table` (docs/doctor.md prints it, with what each one does on
held-out task families).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["REGISTRY", "T", "Threshold", "current", "override", "table"]


@dataclass(frozen=True)
class Threshold:
    """One tunable cut-off: ``default`` and the ``candidates`` a held-out harness may try."""

    name: str
    default: float
    candidates: tuple[float, ...]
    what: str
    set_by: str
    rule: str

    def __post_init__(self) -> None:
        if self.default not in self.candidates:
            raise ValueError(f"{self.name}: the default {self.default!r} must be a candidate")


REGISTRY: dict[str, Threshold] = {}

_TUNED_P3 = ("P3 fault benchmark, digits-mlp and mnist1d-conv, seeds 0-9 (issue 5 sessions, "
             "2026-12-01..03)")
_SCALE_FREE = "a ratio to the run's own noise or its own early epochs"


def _reg(name: str, default: float, candidates: tuple[float, ...], rule: str, what: str,
         set_by: str = _TUNED_P3) -> None:
    REGISTRY[name] = Threshold(name, float(default), tuple(float(c) for c in candidates), what,
                               set_by, rule)


# -- curves (_curves) ----------------------------------------------------------------------
_reg("DIVERGE_FACTOR", 1.5, (1.3, 1.5, 2.0), "diverging, lr-too-high",
     "the loss at the end above this many times its start: it grew")
_reg("FLAT_REL", 0.03, (0.02, 0.03, 0.05), "still-learning, plateau, data-problem",
     "relative change over the last third below this: flat")
_reg("IMPROVE_REL", 0.05, (0.03, 0.05, 0.1), "data-problem",
     "relative improvement of validation above this: improving")
_reg("UNDERFIT_REL", 0.5, (0.3, 0.5, 0.7), "lr-too-low",
     "with tiny updates: the loss fell by less than this share of its start")
_reg("UNDERFIT_GAIN", 0.35, (0.25, 0.35, 0.45), "underfitting",
     "final training (else validation) accuracy's gain over chance, (acc - 1/C) / (1 - 1/C) "
     "(1/C taken as 0 when the log does not know C), below this",
     "2026-12-07 on the corpus design families (cancer-mlp, mnist1d-cnn, friedman-reg, "
     "digits-wide): healthy runs >= 0.54, width-2/width-1 models <= 0.33 (0.41 in a CSV, "
     "which does not know C); it replaced UNDERFIT_ACC 0.75 (P3), which called healthy "
     "MNIST-1D runs at 58-76% underfitting. Lowered from 0.45 the same day on charlm-tf (a "
     "design family from then on): its healthy 4-epoch character models end at 0.40-0.42 (a "
     "next-character task has a low accuracy ceiling), and 0.45 called 18 of 21 underfitting "
     "live and from the CSV")
_reg("UNDERFIT_NO_ACC_REL", 0.2, (0.1, 0.2, 0.3), "underfitting",
     "without an accuracy: the loss fell by less than this share of its start")
_reg("START_BLOWUP", 2.0, (1.5, 2.0, 3.0), "underfitting -> bad-initialization (curves)",
     "with a loss that stays high: the first epoch's mean loss at least this many times the "
     "lowest since (the first steps saw losses far above the model's level)",
     "2026-12-07 on the corpus design families, seeds 0-2, runs the curves called underfitting: "
     "normal-3 init 3.6-17, too-small models <= 1.41")
_reg("UNDERFIT_VAL_BELOW", 0.1, (0.05, 0.1, 0.2), "underfitting -> label-noise (curves)",
     "with a loss that stays high: the final validation loss below the training loss by more "
     "than this share of it",
     "2026-12-07 on the corpus design families, seeds 0-2, runs the curves called underfitting: "
     "label noise 0.34-0.58 below, too-small models at most 0.07 below")
_reg("LOW_LR_REL", 0.1, (0.05, 0.1, 0.2), "lr-too-low",
     "the loss fell by less than this share of its start while still sloping down")
_reg("LOW_LR_PACE", 0.75, (0.6, 0.75, 0.85), "lr-too-low",
     "from the curves: the loss's fall per point over the second half of the run over the "
     "first half's (its pace, on the 20-block smoothed loss) at least this: not slowing down",
     "2026-12-07 on the corpus design families (cancer-mlp, mnist1d-cnn, friedman-reg, "
     "digits-wide, charlm-tf), seeds 0-2, per-epoch columns: lr x0.01 / x0.001 runs 0.91-4.6, "
     "healthy runs in every LR style <= 0.58 (charlm-tf's 4-epoch runs 0.10-0.19, which fell "
     "under LOW_LR_REL and were called lr-too-low in 18 of 21)")
_reg("LOW_UPDATE_RATIO", 2e-3, (1e-4, 1e-3, 2e-3, 4e-3), "lr-too-low",
     "the largest layer's median |dw|/|w| per step below this while the loss fell by less "
     "than UNDERFIT_REL of its start (10x this with a crawl under LOW_LR_REL)",
     "2026-12-07 on the corpus design families (cancer-mlp, mnist1d-cnn, friedman-reg, "
     "digits-wide), seed 0: lr x0.01 / x0.001 runs 2.4e-5..1.3e-3, too-small models (whose "
     "loss also falls slowly) 3.7e-3..2.2e-2; it was 1e-4 (P3), which let the x0.01 runs "
     "read as underfitting")
_reg("OVERFIT_RISE", 0.1, (0.05, 0.1, 0.2), "overfitting",
     "validation rises above its minimum by this share of its total fall")
_reg("OVERFIT_CONFIRM", 2, (1, 2, 3), "overfitting",
     "... in each of the last this many evaluations (or the last 10%, if more)",
     _TUNED_P3 + "; raised from 1 after a false alarm on seeds 7-9, checked on seeds 0-6")
_reg("OVERFIT_ACC_GAP", 0.1, (0.05, 0.1, 0.15), "overfitting",
     "final train accuracy minus val accuracy above this (with train accuracy > 98%)")
_reg("OVERFIT_VAL_ACC_DROP", 0.03, (0.02, 0.03, 0.05), "overfitting",
     "with accuracies: a validation-loss rise counts when the train-val accuracy gap is above "
     "OVERFIT_ACC_GAP or validation accuracy fell this far below its best",
     "2026-12-07 on the design families: cancer-mlp's healthy runs (val loss up 30-40%, val "
     "accuracy flat, gap 2-5.6%) were called overfitting from the CSV columns")
_reg("OSC_GRAD_KEEP", 0.5, (0.3, 0.5, 0.7), "oscillation (live)",
     "gradient norm in the flat part at least this share of its early level")
_reg("OSC_JITTER", 0.1, (0.05, 0.1, 0.2), "oscillation (live)",
     "median step-to-step loss change relative to the loss level above this")
_reg("GRAD_SPIKE", 10.0, (5.0, 10.0, 20.0), "lr-too-high",
     "early gradient norm above this many times its first value, the loss not improving")
_reg("SPIKE_FACTOR", 5.0, (3.0, 5.0, 10.0), "lr-too-high",
     "a training loss above this many times its start anywhere: the step was too big")
_reg("JUMP_BACK", 0.9, (0.8, 0.9, 0.95), "lr-too-high",
     "the loss fell, then came back to at least this share of its start and stayed there "
     "(the last 10%); also: units alive at first died suddenly and the loss stayed this high",
     "set from how a jump back to the start is defined (2026-12-07): a loss at >= 90% of its "
     "start after having fallen below FELL_BELOW of it; not tuned on a benchmark yet")
_reg("FELL_BELOW", 0.8, (0.7, 0.8, 0.9), "lr-too-high",
     "... having first fallen below this share of its start",
     "as JUMP_BACK")
_reg("VAL_FLAT_NOISE", 2.0, (1.0, 2.0, 3.0), "plateau (curves)",
     "validation's Theil-Sen change over the last third within this many times its own "
     "evaluation-to-evaluation noise, and within FLAT_SHARE of its earlier fall: flat",
     "set from the definition of a flat curve against " + _SCALE_FREE
     + " (2026-12-07); not tuned on a benchmark yet")
_reg("FLAT_SHARE", 0.1, (0.05, 0.1, 0.2), "plateau (curves)",
     "validation moved by less than this share of its fall before the last third: flat",
     "as VAL_FLAT_NOISE")
_reg("CYCLE_CORR", 0.5, (0.4, 0.5, 0.6), "oscillation (cyclic LR)",
     "the per-step log loss, detrended over one LR cycle, correlates at least this much with "
     "log LR (best lag of 0 to half a cycle) ...",
     "2026-12-07 on the corpus design families (cancer-mlp, mnist1d-cnn, friedman-reg, "
     "digits-wide, charlm-tf), seeds 0-2: cyclic lr/10..x10 and x30 runs 0.16-0.79 "
     "(digits-wide 0.73-0.79, friedman-reg 0.58-0.67, mnist1d-cnn 0.40-0.60, charlm-tf "
     "0.28-0.52, cancer-mlp 0.16-0.42, whose loss near 0 swings by noise); no healthy run and "
     "no other fault's run has an LR that cycles (>= 4 turns after a 2x move), so none is scored")
_reg("CYCLE_SWING", 0.1, (0.05, 0.1, 0.2), "oscillation (cyclic LR)",
     "... and its std around that trend (a +-10% swing scores 0.1) at least this",
     "2026-12-07 on the same runs: digits-wide 0.81-2.1, friedman-reg 0.17-0.27, mnist1d-cnn "
     "lr x10 0.05-0.10 (x30: 0.004, pinned at chance: lr-too-high's), charlm-tf 0.02-0.04")
_reg("SWING", 3.0, (2.0, 3.0, 4.0), "oscillation (curves)",
     "validation's total variation over its net trend change at least this many times: it "
     "swings back and forth (a monotone curve scores 1)",
     "set from the definition (a curve that goes up and down 3 times as much as it moves "
     "overall), 2026-12-07; not tuned on a benchmark yet")
_reg("SWING_LEVEL", 0.05, (0.03, 0.05, 0.1), "oscillation (curves)",
     "... with a median evaluation-to-evaluation change above this share of the curve's "
     "whole range (the run's own progress), so converged noise is not a swing",
     "as SWING")
# -- training setup (_training) ------------------------------------------------------------
_reg("NOISE_ACC_GAP", 0.05, (0.03, 0.05, 0.1), "label-noise",
     "val accuracy above train accuracy by this")
_reg("HIGH_FLOOR", 0.25, (0.15, 0.25, 0.4), "label-noise, over-regularization",
     "the loss floor above this share of its start: the training loss stays high")
_reg("WARMUP_SPIKE", 1.5, (1.3, 1.5, 2.0), "missing-warmup",
     "early loss peak above this many times the first loss (adaptive optimizers)")
_reg("PLATEAU_FIT", 0.99, (0.9, 0.99, 1.0), "plateau-monitor-mismatch (curves)",
     "share of the LR drops a replayed plateau reducer must land on exactly (its extra cuts "
     "count against it) for the drops to be its decisions",
     "set from lrdoctor explain's attribution rule (0.99: every drop, no stray cut), "
     "2026-12-07")
_reg("SHIFT_REL", 0.2, (0.1, 0.2, 0.3), "distribution-shift",
     "test loss this much above val loss")
_reg("SHIFT_BACK", 0.5, (0.3, 0.5, 1.0), "distribution-shift",
     "... and the test loss gives back at least this share of validation's improvement over "
     "the run, (test - val) / (val0 - val): a gap small against what training achieved is "
     "sampling noise of small splits",
     "2026-12-07 on the design families: healthy runs 0.15-0.29 (cancer-mlp's 114-example "
     "splits, test/val loss ratio up to 1.38), biting shifts >= 0.93")
_reg("AUTOCORR", 0.6, (0.5, 0.6, 0.7), "unshuffled-data",
     "per-step loss autocorrelation at a lag of one epoch above this")
# -- live measurements (_internals) --------------------------------------------------------
_reg("EXPLODE_FACTOR", 100.0, (30.0, 100.0, 300.0), "exploding-gradients",
     "grad norm above this many times its early median")
_reg("EXPLODE_GROWTH", 1.4, (1.3, 1.4, 1.6), "exploding-gradients",
     "or the activation std at the first step grows more than this per activation layer "
     "(last / first, to the 1 / (layers - 1))",
     "2026-12-07 on the corpus design families (cancer-mlp, mnist1d-cnn, friedman-reg, "
     "digits-wide, charlm-tf), seeds 0-2: healthy runs 0.10-0.48 (torch's default init), "
     "weights x4 1.28-1.78 (charlm-tf's LayerNorm blocks 0.89-1.09: missed); Kaiming-scaled "
     "random ReLU MLPs of width 16-256 0.6-1.45 (1,200 draws, narrow 2-layer ones widest)")
_reg("EXPLODE_EARLY", 3.0, (2.0, 3.0, 5.0), "exploding-gradients",
     "... and the largest grad norm of the first 10% of the rows above this many times the "
     "median of the second half",
     "2026-12-07 on the same runs: weights x4 7-37,000, healthy 0.08-5.5 (30 for digits-wide "
     "one-cycle, whose activations shrink)")
_reg("VANISH_RATIO", 1e-2, (3e-3, 1e-2, 3e-2), "vanishing-gradients",
     "first-layer / last-layer gradient norm below this")
_reg("VANISH_EARLY", 1e-2, (3e-3, 1e-2), "vanishing-gradients",
     "or, at the first measurement of the per-layer gradient norms, first / last layer below "
     "this (and above 0: no gradient at all is dead units or zero weights, not a fading one)",
     "2026-12-07 on the corpus design families (cancer-mlp, mnist1d-cnn, friedman-reg, "
     "digits-wide, charlm-tf), seeds 0-2: tiny-init and deeper-sigmoid runs 1e-10..5e-3 "
     "(charlm-tf's deeper-sigmoid runs 0.028-0.033: missed), healthy runs >= 0.031 (charlm-tf, "
     "whose first layer is a lookup table), other faults >= 0.013 except dead ReLUs (0, once "
     "4e-4: explained by dead-relu)")
_reg("VANISH_ABS", 1e-7, (1e-8, 1e-7, 1e-6), "vanishing-gradients",
     "or the global gradient norm below this")
_reg("DEAD_FRAC", 0.5, (0.3, 0.5, 0.7), "dead-relu",
     "share of a ReLU layer's units zero for whole batches above this")
_reg("SATURATED", 0.5, (0.3, 0.5, 0.7), "saturated-activations",
     "share of a sigmoid/tanh layer's outputs within 1% of a limit above this")
_reg("SATURATED_INIT", 0.01, (0.005, 0.01, 0.02), "saturated-activations",
     "or the share of a sigmoid/tanh layer's outputs within 1% of a limit at the first "
     "measurement above this (a fan-in-scaled init starts almost none there)",
     "2026-12-07 on the corpus design families (cancer-mlp, mnist1d-cnn, friedman-reg, "
     "digits-wide, charlm-tf): weights x4 with tanh or sigmoid 0.025-0.27, every other run "
     "with sigmoid/tanh modules (deeper sigmoid nets, a sigmoid output) 0.0000")
_reg("INPUT_ABSMAX", 20.0, (10.0, 20.0, 50.0), "unnormalized-input",
     "input magnitude that says 'not normalized'")
_reg("INPUT_STD", 5.0, (3.0, 5.0, 10.0), "unnormalized-input", "input std above this")
_reg("INPUT_MEAN", 5.0, (3.0, 5.0, 10.0), "unnormalized-input", "|input mean| above this")
_reg("INPUT_SCALED", 0.5, (0.25, 0.5), "unnormalized-input",
     "inputs whose median batch mean and std minus 1 are both within this of 0 are standardized: "
     "their max |x| above INPUT_ABSMAX is one rare feature value, not a missing scaling",
     "2026-12-07 on the corpus design families (cancer-mlp, mnist1d-cnn, friedman-reg, "
     "digits-wide, charlm-tf): digits-wide's full-batch runs (mean -2e-9, std 0.976, max |x| "
     "32.8 from a near-constant pixel) were called unnormalized-input; every unnormalized-input "
     "run that is flagged has std >= 6")
_reg("TRAIN_NOISE_STD", 1.5, (1.3, 1.5, 2.0), "data-problem (live)",
     "training batches with mean within INPUT_SCALED of 0 and a std of at least this (below "
     "INPUT_STD): standardized inputs with noise added in the training pipeline",
     "2026-12-07 on the corpus design families (cancer-mlp, mnist1d-cnn, friedman-reg, "
     "digits-wide): healthy runs 0.92-1.0, training-input noise of std 2 and 4 gives 2.2 and "
     "4.1; no other fault with mean ~0 above 1.0")
_reg("TRAIN_NOISE_VAL", 1.2, (1.1, 1.2, 1.3), "data-problem (live)",
     "... and the validation loss over the last third at most this many times the training "
     "loss: the noised training split is the harder one",
     "2026-12-07 on the design families: those noised runs 0.93-1.19 on mnist1d-cnn and "
     "friedman-reg (digits-wide 0.97-2.3, cancer-mlp 19-67, whose models memorize the noise); "
     "healthy runs 0.97-17.5 (no noise signature)")
_reg("LABEL_PURITY", 0.8, (0.6, 0.8, 0.9), "unshuffled-data",
     "batches made of mostly one label: the median share of the commonest label above this")
_reg("NOISE_SCALE_FACTOR", 30.0, (10.0, 30.0, 100.0), "batch-size",
     "gradient noise scale this many times from the batch size")
_reg("INIT_LOSS_FACTOR", 3.0, (2.0, 3.0, 5.0), "bad-initialization",
     "first loss above this many times ln(classes)")
_reg("INIT_ACT_LOW", 1e-3, (1e-4, 1e-3, 1e-2), "bad-initialization",
     "a layer's first activation std below this")
_reg("INIT_ACT_HIGH", 50.0, (20.0, 50.0, 100.0), "bad-initialization",
     "a layer's first activation std above this")
# -- per-epoch signatures (_epochs, _evalgap, _signatures) ---------------------------------
_reg("AT_CHANCE", 1.25, (1.15, 1.25, 1.35), "per-epoch signatures",
     "median accuracy x exp(level) at most this (and >= 0.5): at chance",
     _TUNED_P3 + ": at chance <= 1.2, learned >= 1.3 in those runs")
_reg("BLOWUP", 1.5, (1.3, 1.5, 2.0), "unnormalized-input, lr-too-high (per epoch)",
     "first-epoch loss at least this many times the chance level the run then sits at")
_reg("PIN_REL", 0.001, (5e-4, 1e-3, 2e-3), "dead-relu (per epoch)",
     "median |loss - level| over the tail at most this share of the level: pinned")
_reg("CREEP_REL", 0.0025, (1e-3, 2.5e-3, 5e-3), "vanishing-gradients (per epoch)",
     "the first two tail epochs both this share above the level: creeping down")
_reg("CREEP_MAX", 0.05, (0.03, 0.05, 0.1), "vanishing-gradients (per epoch)",
     "... while the whole tail stays within this share of the level")
_reg("BOUNCE_REL", 0.01, (5e-3, 1e-2, 2e-2), "lr-too-high (per epoch)",
     "median |loss - level| above this share of the level without a trend: bouncing")
_reg("MONOTONE", 0.8, (0.7, 0.8, 0.9), "lr-too-low (per epoch)",
     "share of epoch-to-epoch changes that fall, for 'frozen' (tiny lr)")
_reg("MIN_LEVEL", 0.6, (0.5, 0.6, 0.69), "per-epoch signatures",
     "the chance level is at least this many nats (binary at chance: ln 2 = 0.69)")
_reg("BELOW_CHANCE", 0.5, (0.4, 0.5, 0.6), "unshuffled-data (per epoch)",
     "train accuracy below this share of exp(-val_loss) and of the val accuracy")
_reg("TRAIN_ABOVE_VAL", 1.05, (1.02, 1.05, 1.1), "unshuffled-data (per epoch)",
     "... with the training loss above this many times the validation loss")
_reg("SOFTMAX_SLOPE", 1.3, (1.2, 1.3, 1.5), "loss-activation-mismatch (per epoch)",
     "the loss fell at most this many times what a double softmax allows for the accuracy",
     _TUNED_P3 + ": healthy and noisy-label runs fall >= 1.8x faster")
_reg("SOFTMAX_MIN_GAIN", 0.2, (0.1, 0.2, 0.3), "loss-activation-mismatch (per epoch)",
     "judged at epochs whose accuracy is at least this far from chance to 1")
_reg("STALLED_START", 0.97, (0.95, 0.97, 0.99), "loss-activation-mismatch (per epoch)",
     "C is estimated only when epoch 1's loss is at least this share of epoch 0's")
_reg("EVAL_ABOVE", 1.5, (1.3, 1.5, 1.8), "over-regularization (per epoch)",
     "validation accuracy at least this many times the chance accuracy exp(-level)",
     _TUNED_P3 + ": dropout 0.9 reached 1.86-2.0, the look-alikes at most 1.25")
_reg("NOISE_SHAPE", 1.05, (1.02, 1.05, 1.1), "label-noise vs over-regularization",
     "(train acc e^loss) / (val acc e^val loss) at least this: noisy labels",
     _TUNED_P3 + ": noisy labels 1.08-1.40, dropout 0.9 0.94-1.02")
_reg("CONFIDENT", 0.8, (0.7, 0.8, 0.9), "label-noise vs over-regularization",
     "... judged once the val loss is at most this share of its first epoch's value")
_reg("OVERFLOW_EPOCHS", 2, (1, 2, 3), "lr-too-high / bad-initialization (per epoch)",
     "the loss is NaN/Inf within this many first epochs")
_reg("ORDINARY_LR", 0.1, (0.03, 0.1, 0.3), "bad-initialization (per epoch)",
     "at an lr at most this (where plain SGD trains) an overflow means the scale is off")

_VALUES: ContextVar[dict[str, float] | None] = ContextVar("lrdoctor_thresholds", default=None)


def current() -> dict[str, float]:
    """Every threshold's value now (defaults, or what an enclosing :func:`override` set)."""
    values = _VALUES.get()
    return {n: t.default for n, t in REGISTRY.items()} if values is None else dict(values)


class _Values:
    """Attribute access to the current values: ``T.FLAT_REL``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        values = _VALUES.get()
        try:
            value = REGISTRY[name].default if values is None else values[name]
        except KeyError:
            raise AttributeError(f"no doctor threshold named {name!r}") from None
        return int(value) if name in _COUNTS else value

    def __dir__(self) -> list[str]:
        return sorted(REGISTRY)


_COUNTS = frozenset({"OVERFIT_CONFIRM", "OVERFLOW_EPOCHS"})
T = _Values()


@contextlib.contextmanager
def override(**values: float) -> Iterator[dict[str, float]]:
    """Set thresholds by name for the code inside the ``with`` block; yields the values in force.

    Any value may be given, not only a registered candidate. Unknown names and non-finite or
    non-numeric values raise ``ValueError`` naming the parameter.
    """
    for name, value in values.items():
        if name not in REGISTRY:
            raise ValueError(f"override({name}=...): no doctor threshold named {name!r}; "
                             f"known: {', '.join(sorted(REGISTRY))}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"override({name}={value!r}): the value must be a finite number")
    new = current()
    new.update({k: float(v) for k, v in values.items()})
    token = _VALUES.set(new)
    try:
        yield dict(new)
    finally:
        _VALUES.reset(token)


def table() -> list[Threshold]:
    """Every registered threshold, in registry order (grouped by rule module)."""
    return list(REGISTRY.values())
