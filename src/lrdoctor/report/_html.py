"""``Report``: a small builder for one self-contained HTML page (jinja2, autoescaped).

Images are inline base64 PNGs; no scripts, fonts or styles are fetched from anywhere. Every
text that comes from a log (metric names, evidence, captions, table cells) is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lrdoctor.doctor import Diagnosis
from lrdoctor.errors import LRDoctorError
from lrdoctor.logs import TrainingLog

__all__ = ["Report"]


def _png(fig: Any, dpi: int = 110) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    import matplotlib.pyplot as plt
    plt.close(fig)  # free the figure's memory when it came from pyplot (a no-op otherwise)
    return base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class _Section:
    kind: str
    title: str
    data: dict[str, Any] = field(default_factory=dict)


class Report:
    """Assemble sections, then ``write(path)`` one HTML file (also ``to_dict()`` for JSON).

    >>> r = Report("run 1")
    >>> _ = r.add_summary("Loss falls, validation follows.", verdict="healthy")
    >>> _ = r.add_table("numbers", ["metric", "value"], [["<b>val</b>", 0.5]])
    >>> "&lt;b&gt;val&lt;/b&gt;" in r.render()
    True
    """

    def __init__(self, title: str, *, subtitle: str | None = None):
        self.title = title
        self.subtitle = subtitle
        self.sections: list[_Section] = []

    def add_summary(self, text: str, verdict: str | None = None) -> Report:
        """A lead paragraph; ``verdict`` (e.g. 'healthy', 'warning', 'critical') colours it."""
        self.sections.append(_Section("summary", "", {"text": text, "verdict": verdict or ""}))
        return self

    def add_diagnosis(self, diagnosis: Diagnosis, log: TrainingLog | None = None, *,
                      title: str | None = None) -> Report:
        """Findings (worst first) with evidence and fixes, plus the curves when ``log`` is given."""
        image = None
        if log is not None:
            from lrdoctor.report._plots import diagnosis_figure
            image = _png(diagnosis_figure(diagnosis, log))
        self.sections.append(_Section("diagnosis", title or (diagnosis.source or "diagnosis"), {
            "findings": [f.to_dict() for f in diagnosis.findings],
            "not_checked": list(diagnosis.not_checked),
            "warnings": list(diagnosis.warnings),
            "worst": diagnosis.worst, "format": diagnosis.format, "unit": diagnosis.step_unit,
            "image": image,
        }))
        return self

    def add_figure(self, title: str, fig: Any, caption: str | None = None) -> Report:
        """A matplotlib figure, embedded as a PNG."""
        self.sections.append(_Section("figure", title, {"image": _png(fig),
                                                        "caption": caption or ""}))
        return self

    def add_image(self, title: str, image: str | os.PathLike[str] | bytes,
                  caption: str | None = None) -> Report:
        """A PNG given as a file path or as bytes, embedded inline."""
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            raise LRDoctorError(f"add_image takes PNG data; {title!r} is not a PNG")
        encoded = base64.b64encode(data).decode("ascii")
        self.sections.append(_Section("figure", title, {"image": encoded, "caption": caption or ""}))
        return self

    def add_table(self, title: str, headers: list[str], rows: list[list[Any]],
                  caption: str | None = None) -> Report:
        cells = [[_cell(v) for v in row] for row in rows]
        self.sections.append(_Section("table", title, {"headers": [str(h) for h in headers],
                                                       "rows": cells, "caption": caption or ""}))
        return self

    def add_journal(self, lines: list[str], title: str = "journal") -> Report:
        """Pre-formatted lines (e.g. a PlateauLR journal), shown monospaced."""
        self.sections.append(_Section("journal", title, {"lines": [str(x) for x in lines]}))
        return self

    def add_text(self, title: str, text: str) -> Report:
        self.sections.append(_Section("text", title, {"text": text}))
        return self

    def render(self) -> str:
        import jinja2

        source = resources.files("lrdoctor.report").joinpath("templates/report.html.j2")
        env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                 trim_blocks=True, lstrip_blocks=True)
        template = env.from_string(source.read_text(encoding="utf-8"))
        return template.render(title=self.title, subtitle=self.subtitle or "",
                               sections=self.sections)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`render` (UTF-8) to ``path`` with :func:`lrdoctor._output.write_file`:
        atomically for a file, through a symlink to its target, in place for a device or FIFO."""
        from lrdoctor._output import write_file

        write_file(path, self.render())
        return Path(path)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "sections": [
            {"kind": s.kind, "title": s.title,
             **{k: v for k, v in s.data.items() if k != "image"}} for s in self.sections]}


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


escape = html.escape
