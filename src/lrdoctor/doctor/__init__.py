"""The training doctor: pure rules that turn a :class:`~lrdoctor.logs.TrainingLog` into findings.

``diagnose(log)`` (re-exported as ``lrdoctor.diagnose``) runs every rule
and returns a :class:`Diagnosis` whose ``findings`` are ranked worst first. Each rule is one
small function ``(Context) -> list[Finding]`` in ``_curves`` (what any log shows: loss, accuracy,
learning rate), ``_underfitting`` (a loss that stays high, and the look-alike causes the curves
alone fit), ``_validation`` (the validation curve against its own noise), ``_training`` (how
training was set up, seen in the curves), ``_internals`` (what
only the live Monitor records: gradients per layer, activations, inputs, setup),
``_lr_cycles`` (the per-step loss's answer to a cyclic learning rate) or
``_signatures`` (setup faults read from per-epoch loss and accuracy alone, via the chance-level
analysis in ``_epochs`` and the train-versus-validation analysis in ``_evalgap``, for logs without
the Monitor's measurements). When a log lacks what a rule needs, the rule records the reason in
``Diagnosis.not_checked`` instead of guessing. Finding codes and thresholds: docs/doctor.md.

>>> import numpy as np
>>> from lrdoctor.logs import Series, TrainingLog
>>> steps = np.arange(100)
>>> log = TrainingLog({"train/loss": Series(steps, 2.3 * np.exp(-steps / 4) + 0.05)})
>>> diagnose(log).codes
['plateau', 'healthy']
"""

from __future__ import annotations

import os
from typing import Any

from lrdoctor.doctor import _changes
from lrdoctor.doctor._context import Context
from lrdoctor.doctor._finding import CODES, SEVERITIES, Diagnosis, Finding, rank
from lrdoctor.errors import LogFormatError
from lrdoctor.logs import TrainingLog, load

__all__ = ["CODES", "Diagnosis", "Finding", "RULES", "SEVERITIES", "diagnose"]


def _rules() -> tuple:
    from lrdoctor.doctor import (
        _curves,
        _internals,
        _lr_cycles,
        _signatures,
        _training,
        _underfitting,
        _validation,
    )
    return (_curves.RULES + _underfitting.RULES + _validation.RULES + _training.RULES + _internals.RULES
            + _lr_cycles.RULES
            + _signatures.RULES)


RULES = _rules()


def diagnose(log: TrainingLog | str | os.PathLike[str], *, rules: Any = None) -> Diagnosis:
    """Run every rule on ``log`` (a TrainingLog or a path for :func:`lrdoctor.logs.load`).

    Findings are ranked: critical before warning before info, then by score; one per code.
    When nothing of severity warning or above is found, a ``healthy`` finding says so.
    """
    if not isinstance(log, TrainingLog):
        log = load(log)
    if len(log) == 0 and not log.events:
        raise LogFormatError("the log holds no series to diagnose")
    ctx = Context(log)
    findings: list[Finding] = []
    for rule in rules if rules is not None else RULES:
        findings.extend(rule(ctx))
    if ctx.train is None:
        ctx.skip("healthy", "no training loss in the log: only partial checks ran")
    if not any(f.severity != "info" for f in findings) and ctx.train is not None:
        findings.append(Finding("healthy", CODES["healthy"], "info",
                                "no rule found a problem"
                                + (f" ({len(ctx.not_checked)} checks could not run)"
                                   if ctx.not_checked else ""),
                                "Nothing to fix; see the info findings for what to try next.",
                                (), 0.1))
    seen, not_checked = set(), []
    codes = {f.code for f in findings}
    for code, reason in ctx.not_checked:
        if code not in seen and code not in codes:
            seen.add(code)
            not_checked.append((code, reason))
    findings = _changes.attach(findings, ctx)  # each fix as data too: docs/repair.md
    return Diagnosis(rank(findings), tuple(not_checked), log.source, log.format, log.step_unit,
                     tuple(log.warnings))
