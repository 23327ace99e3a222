"""What the doctor says: ``Finding`` (one problem, with evidence and a fix) and ``Diagnosis``."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

__all__ = ["CODES", "Diagnosis", "Finding", "SEVERITIES"]

SEVERITIES = ("info", "warning", "critical")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}

#: Every finding code (DESIGN.md), with its title.
CODES: dict[str, str] = {
    "healthy": "Training looks healthy",
    "still-learning": "Still learning: the loss is still going down",
    "overfitting": "Overfitting: validation gets worse while training improves",
    "underfitting": "Underfitting: the training loss stays high",
    "plateau": "Plateau: neither training nor validation improves any more",
    "diverging": "Diverging: the loss grows",
    "data-problem": "Data problem: training is flat while validation improves",
    "lr-too-high": "Learning rate too high",
    "lr-too-low": "Learning rate too low",
    "oscillation": "Oscillation: the loss is flat while the gradient is not small",
    "exploding-gradients": "Exploding gradients",
    "vanishing-gradients": "Vanishing gradients",
    "dead-relu": "Dead ReLUs",
    "saturated-activations": "Saturated activations",
    "nonfinite": "NaN or Inf values",
    "unnormalized-input": "Inputs are not normalized",
    "unshuffled-data": "Training data is not shuffled",
    "label-noise": "Noisy labels",
    "over-regularization": "Over-regularization",
    "missing-warmup": "Missing learning-rate warm-up",
    "plateau-monitor-mismatch": "The plateau scheduler watches the wrong metric or mode",
    "loss-activation-mismatch": "Output activation does not match the loss",
    "bad-initialization": "Bad weight initialization",
    "batch-size": "Batch size far from the gradient noise scale",
    "distribution-shift": "Test split much worse than validation",
}


@dataclass(frozen=True)
class Finding:
    """One diagnosed problem.

    ``evidence`` is a sentence with the numbers and steps that triggered the rule; ``fix`` one
    sentence saying what to change; ``steps`` the steps where it shows (for marking plots);
    ``score`` (0-1) orders findings of the same severity; ``data`` the raw numbers;
    ``changes`` the fix as data: alternatives, best first, each a dict of training knobs from the
    vocabulary in docs/repair.md (``{"lr": 0.005}``, ``{"warmup_steps": 40}``) that
    :func:`lrdoctor.repair` applies; ``explained_by`` the code of the finding that causes this
    one (then its severity is ``info``: a consequence, not a second problem; see ``_causes``).
    Where the log cannot tell look-alike causes apart, ``data["candidates"]`` names them (at most
    3, the likeliest first) and ``data["check"]`` the one check that splits them; read them as
    :attr:`candidates` and :attr:`check`.
    """

    code: str
    title: str
    severity: str
    evidence: str
    fix: str
    steps: tuple[float, ...] = ()
    score: float = 0.5
    data: dict[str, Any] = field(default_factory=dict, compare=False)
    changes: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    explained_by: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in _RANK:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if len(self.data.get("candidates") or ()) > 3:
            raise ValueError(f"{self.code}: data['candidates'] names at most 3 causes, got "
                             f"{self.data['candidates']!r}")

    @property
    def candidates(self) -> tuple[str, ...]:
        """The causes the evidence fits (``data["candidates"]``, at most 3), else ``(code,)``."""
        return tuple(self.data.get("candidates") or ()) or (self.code,)

    @property
    def check(self) -> str | None:
        """The one check that tells :attr:`candidates` apart (``data["check"]``), if any."""
        return self.data.get("check")

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "title": self.title, "severity": self.severity,
                "evidence": self.evidence, "fix": self.fix,
                "steps": [int(s) if float(s).is_integer() else float(s) for s in self.steps],
                "score": round(float(self.score), 4), "data": dict(self.data),
                "changes": [dict(c) for c in self.changes], "explained_by": self.explained_by}


@dataclass(frozen=True)
class Diagnosis:
    """Findings ranked worst first, plus what could not be checked and why."""

    findings: tuple[Finding, ...]
    not_checked: tuple[tuple[str, str], ...] = ()
    source: str | None = None
    format: str = "unknown"
    step_unit: str = "step"
    warnings: tuple[str, ...] = ()

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    @property
    def worst(self) -> str:
        """The highest severity among the findings ('info' when there are none)."""
        return max((f.severity for f in self.findings), key=_RANK.__getitem__, default="info")

    @property
    def problems(self) -> list[Finding]:
        """Findings of severity warning or critical."""
        return [f for f in self.findings if f.severity != "info"]

    def has(self, code: str) -> bool:
        return code in self.codes

    def first_step(self, code: str) -> float | None:
        """The earliest step at which ``code`` shows (None if absent or without steps)."""
        steps = [s for f in self.findings if f.code == code for s in f.steps]
        return min(steps) if steps else None

    def at_least(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if _RANK[f.severity] >= _RANK[severity]]

    def to_dict(self) -> dict[str, Any]:
        return {"findings": [f.to_dict() for f in self.findings],
                "not_checked": [{"code": c, "reason": r} for c, r in self.not_checked],
                "worst": self.worst, "source": self.source, "format": self.format,
                "step_unit": self.step_unit, "warnings": list(self.warnings)}

    def _repr_html_(self) -> str:
        """A table of the findings for notebooks (Jupyter calls this to display a Diagnosis)."""
        sev = {"critical": "#b03a2e", "warning": "#b9770e", "info": "#5d6d7e"}
        rows = "".join(
            f'<tr><td style="color:{sev.get(f.severity, "#000")}"><b>{escape(f.severity)}</b>'
            f"</td><td><code>{escape(f.code)}</code></td><td>{escape(f.title)}</td>"
            f"<td>{escape(f.evidence)}</td><td>{escape(f.fix)}</td></tr>"
            for f in self.findings)
        head = "".join(f"<th>{h}</th>" for h in ("severity", "code", "finding", "evidence", "fix"))
        caption = escape(f"{self.source or 'log'}: {self.summary()}")
        return (f'<table><caption style="text-align:left">{caption}</caption>'
                f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")

    def summary(self) -> str:
        """One line: the worst problems by title."""
        if not self.problems:
            return self.findings[0].title if self.findings else "No findings"
        return "; ".join(f.title for f in self.problems[:3])


#: Root causes before the mechanisms they trigger, before the outcomes everyone sees:
#: a softmax before CrossEntropyLoss *causes* a plateau, not the other way round.
TIERS: dict[str, int] = {
    **dict.fromkeys(("loss-activation-mismatch", "unnormalized-input", "unshuffled-data",
                     "bad-initialization", "plateau-monitor-mismatch", "over-regularization"), 0),
    **dict.fromkeys(("lr-too-high", "lr-too-low", "missing-warmup",
                     "label-noise", "distribution-shift", "data-problem", "batch-size"), 1),
    **dict.fromkeys(("exploding-gradients", "vanishing-gradients", "dead-relu",
                     "saturated-activations", "oscillation"), 2),
}


def rank(findings: list[Finding]) -> tuple[Finding, ...]:
    """Problems before info; among problems root causes first (:data:`TIERS`), then severity,
    then score, then the earlier step; one finding per code. A problem that another present
    problem causes (``_causes.CONSEQUENCES``) is shown as its consequence (``explained_by``)."""
    from lrdoctor.doctor._causes import explain

    best: dict[str, Finding] = {}
    for f in findings:
        old = best.get(f.code)
        if old is None or (_RANK[f.severity], f.score) > (_RANK[old.severity], old.score):
            best[f.code] = f

    def order(f: Finding) -> tuple:
        return (f.severity == "info", TIERS.get(f.code, 3), -_RANK[f.severity], -f.score,
                min(f.steps) if f.steps else 0.0)

    return tuple(sorted(explain(list(best.values()), order), key=order))
