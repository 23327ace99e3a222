"""The LR range test ("LR finder"), framework-free: ramps, smoothing, stop rule, suggestion rules.

Train for a few hundred steps while the LR ramps up (:func:`ramp`), record the loss
(:class:`RangeTest` smooths it and stops on divergence or NaN/Inf), then read a learning rate
off the curve with a rule (:data:`RULES`). :func:`analyze` combines repeats on different batches
into a median suggestion, an interval, a grade and Leslie-Smith schedule specs
(:class:`FinderResult`); :func:`zoom_range` is where a second, slower ramp should look;
:func:`search` runs the passes (first ramp, an adaptive slower or continued ramp when it shows
no descent, the zoom, a documented fallback) through any ``run(lo, hi, steps)``; and
:class:`BudgetProbe` checks, a quarter of the way into a run of known length, whether the
suggestion can move closer to the loss minimum.
``lrdoctor.torch.find_lr`` runs the whole thing on a PyTorch model.

>>> import numpy as np
>>> lrs = np.logspace(-5, 0, 100)
>>> loss = 2 - np.tanh(3 * (np.log10(lrs) + 2.5)) + np.where(lrs > 0.1, 40 * (lrs - 0.1), 0)
>>> result = analyze([Curve.from_losses(lrs, loss)])
>>> 1e-3 < result.picks["steepest"] < 1e-2, result.rule in RULES
(True, True)
"""

from lrdoctor.finder._curve import (
    Curve,
    RangeTest,
    default_beta,
    ema,
    ramp,
    robust_smooth,
    running_median,
    zero_lag,
)
from lrdoctor.finder._probe import (
    NEAR_MARGIN,
    PROBE_FRACTION,
    BudgetProbe,
    ProbeReport,
    probe_edge,
)
from lrdoctor.finder._result import (
    DEFAULT_RULE,
    GRADES,
    SPEC_KINDS,
    ZOOM_ABOVE,
    ZOOM_BELOW,
    FinderResult,
    analyze,
    zoom_range,
)
from lrdoctor.finder._rules import (
    MARGIN,
    PEER_RULES,
    RULES,
    Pick,
    descent,
    edge,
    margin,
    minimum,
    steepest,
    valley,
)
from lrdoctor.finder._search import (
    FALLBACK_DIVISOR,
    adapt_range,
    fallback,
    search,
)

__all__ = [
    "BudgetProbe", "Curve", "DEFAULT_RULE", "FALLBACK_DIVISOR", "FinderResult", "GRADES",
    "MARGIN", "NEAR_MARGIN", "PEER_RULES", "PROBE_FRACTION", "Pick", "ProbeReport", "RULES",
    "RangeTest", "SPEC_KINDS", "ZOOM_ABOVE", "ZOOM_BELOW", "adapt_range", "analyze",
    "default_beta", "descent", "edge", "ema", "fallback", "margin", "minimum", "probe_edge",
    "ramp", "robust_smooth", "running_median", "search", "steepest", "valley", "zero_lag",
    "zoom_range",
]
