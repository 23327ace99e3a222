"""A diagnosis as rich renderables for the terminal (the library builds them, the CLI prints)."""

from __future__ import annotations

from typing import Any

from lrdoctor.doctor import Diagnosis

__all__ = ["render_terminal"]

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def render_terminal(diagnosis: Diagnosis, *, show_not_checked: bool = True) -> Any:
    """A ``rich`` Group: one panel per finding (worst first), then what could not be checked."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    head = Text()
    head.append("lrdoctor diagnose", style="bold")
    if diagnosis.source:
        head.append(f"  {diagnosis.source}", style="dim")
    head.append(f"  ({diagnosis.format}, x axis in {diagnosis.step_unit}s)", style="dim")
    parts.append(head)
    for f in diagnosis.findings:
        body = Text()
        body.append("evidence: ", style="bold")
        body.append(f.evidence + "\n")
        body.append("fix: ", style="bold")
        body.append(f.fix)
        if f.steps:
            body.append(f"\nat {diagnosis.step_unit} "
                        + ", ".join(f"{s:g}" for s in f.steps[:5]), style="dim")
        title = Text()
        title.append(f" {f.severity.upper()} ", style=_STYLE[f.severity] + " reverse")
        title.append(f" {f.title} ", style=_STYLE[f.severity])
        title.append(f"[{f.code}]", style="dim")
        parts.append(Panel(body, title=title, title_align="left",
                           border_style=_STYLE[f.severity]))
    if show_not_checked and diagnosis.not_checked:
        t = Table(title="not checked", title_justify="left", show_header=False, box=None,
                  padding=(0, 1))
        for code, reason in diagnosis.not_checked:
            t.add_row(Text(code, style="dim bold"), Text(reason, style="dim"))
        parts.append(t)
    for w in diagnosis.warnings:
        parts.append(Text(f"log warning: {w}", style="dim yellow"))
    return Group(*parts)
