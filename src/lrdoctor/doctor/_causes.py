"""Causes before symptoms: which finding explains which, and how an explained one is shown.

:data:`CONSEQUENCES` maps a cause to the findings it produces on its own: a learning rate far too
high kills ReLUs, overflows to NaN, makes the loss grow and the early layers' gradients vanish;
a bad initialization explodes gradients and saturates activations; noisy labels cap the
training accuracy (which reads as underfitting); too much regularization underfits. The
relation is closed transitively (a cause explains its consequences' consequences).

:func:`explain` applies it: a problem finding (warning or critical) whose code a present
problem finding's code explains is kept, but as its consequence: ``explained_by`` names the
cause, its severity becomes ``info`` (it is not a second problem), and the cause's evidence
ends with what it also explains; the cause takes the higher of the two severities, so a
NaN it explains still makes the diagnosis critical. When several present causes explain the
same symptom, the one ranked first (root-cause tier, then severity, then score) takes it.

A finding may say which present finding names it better: ``data["shown_as"]`` (a code). A
weight initialization that is too small (but not zero) is a bad initialization whose whole
effect is that the backward signal shrinks layer by layer; when the per-layer gradient norms
show it, :func:`explain` turns the relation round for that pair: the init finding becomes the
consequence of ``vanishing-gradients`` (its evidence says "shown as ..."), as do the findings the
init explained, so the user reads the effect the Monitor measured, with the init as its source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from lrdoctor.doctor._finding import CODES, Finding

__all__ = ["CONSEQUENCES", "explain", "explains"]

_OUTCOMES = ("underfitting", "plateau", "still-learning")

#: cause -> the findings it produces by itself (direct consequences; see :func:`explains`).
CONSEQUENCES: dict[str, tuple[str, ...]] = {
    "lr-too-high": ("dead-relu", "nonfinite", "diverging", "vanishing-gradients",
                    "exploding-gradients", "saturated-activations", "oscillation", *_OUTCOMES),
    "missing-warmup": ("dead-relu", "nonfinite", "diverging", "exploding-gradients",
                       *_OUTCOMES),
    "bad-initialization": ("lr-too-high", "exploding-gradients", "saturated-activations", "dead-relu",
                           "vanishing-gradients", "nonfinite", "diverging", *_OUTCOMES),
    "unnormalized-input": ("lr-too-high", "exploding-gradients", "saturated-activations", "dead-relu",
                           "nonfinite", "diverging", *_OUTCOMES),
    "loss-activation-mismatch": ("vanishing-gradients", "saturated-activations", "lr-too-low",
                                 *_OUTCOMES),
    "label-noise": ("overfitting", *_OUTCOMES),
    "over-regularization": ("dead-relu", "vanishing-gradients", *_OUTCOMES),
    "unshuffled-data": ("oscillation", *_OUTCOMES),
    "plateau-monitor-mismatch": ("lr-too-low", *_OUTCOMES),
    "lr-too-low": _OUTCOMES,
    "batch-size": _OUTCOMES,
    "data-problem": ("label-noise", "over-regularization", *_OUTCOMES),
    "exploding-gradients": ("nonfinite", "diverging", *_OUTCOMES),
    "diverging": ("nonfinite", *_OUTCOMES),
    "dead-relu": ("vanishing-gradients", *_OUTCOMES),
    "saturated-activations": ("vanishing-gradients", *_OUTCOMES),
    "vanishing-gradients": _OUTCOMES,
    "oscillation": _OUTCOMES,
}

_SEV = {"info": 0, "warning": 1, "critical": 2}


def _closure() -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}

    def walk(code: str, seen: frozenset[str]) -> frozenset[str]:
        if code in out:
            return out[code]
        acc: set[str] = set()
        for child in CONSEQUENCES.get(code, ()):
            if child not in seen:
                acc |= {child} | walk(child, seen | {child})
        out[code] = frozenset(acc - {code})
        return out[code]

    for code in CONSEQUENCES:
        walk(code, frozenset({code}))
    return out


_EXPLAINS = _closure()


def explains(cause: str, symptom: str) -> bool:
    """True when ``cause`` produces ``symptom`` by itself (directly or through a chain)."""
    return symptom in _EXPLAINS.get(cause, frozenset())


def _shown_as(finding: Finding, other: Finding) -> bool:
    """``finding`` asks to be named by ``other`` (``data["shown_as"]``, see the module)."""
    return finding.data.get("shown_as") == other.code


def _relation(problems: Sequence[Finding]) -> Callable[[Finding, Finding], bool]:
    """:func:`explains` on present findings, with each ``shown_as`` pair turned round: the
    finding that names the other (Y for X) explains X, explains whatever X explains, and is
    explained only by what explains X."""
    alias = {x.code: y.code for x in problems for y in problems if x is not y and _shown_as(x, y)}

    def relation(cause: Finding, symptom: Finding) -> bool:
        if alias.get(symptom.code) == cause.code:
            return True
        if alias.get(cause.code) == symptom.code:
            return False
        stands_for = [x for x, y in alias.items() if y == symptom.code]
        sym = stands_for[0] if stands_for else symptom.code
        causes = [cause.code] + [x for x, y in alias.items() if y == cause.code]
        return any(explains(c, sym) for c in causes)

    return relation


def explain(findings: Sequence[Finding], order: Callable[[Finding], tuple]) -> list[Finding]:
    """``findings`` (one per code) with each explained problem shown as its cause's
    consequence; ``order`` ranks candidate causes (smaller first)."""
    problems = sorted((f for f in findings if f.severity != "info"), key=order)
    rel = _relation(problems)
    parent: dict[str, Finding] = {}
    for f in problems:
        cause = next((c for c in problems if c is not f and rel(c, f) and not rel(f, c)), None)
        if cause is not None:
            parent[f.code] = cause
    if not parent:
        return list(findings)

    def root(code: str) -> Finding:
        seen = set()
        f = parent[code]
        while f.code in parent and f.code not in seen:
            seen.add(f.code)
            f = parent[f.code]
        return f

    roots = {code: root(code) for code in parent}
    out = []
    for f in findings:
        if f.code in roots:
            cause = roots[f.code]
            how = "shown as" if _shown_as(f, cause) else "a consequence of"
            out.append(dataclasses.replace(
                f, severity="info", explained_by=cause.code,
                evidence=f"{how} {cause.code}: {f.evidence}"))
            continue
        mine = [g for code, c in roots.items() if c.code == f.code
                for g in findings if g.code == code]
        if mine:
            worst = max([f.severity] + [g.severity for g in mine], key=_SEV.__getitem__)
            names = ", ".join(CODES.get(g.code, g.code).split(":")[0].lower() for g in
                              sorted(mine, key=order) if not _shown_as(g, f))
            data = dict(f.data)
            data["explains"] = [g.code for g in sorted(mine, key=order)]
            f = dataclasses.replace(f, severity=worst, data=data, evidence=f.evidence + (
                f"; this also explains: {names}" if names else ""))
        out.append(f)
    return out
