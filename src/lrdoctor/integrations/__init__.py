"""Drop-in integrations: Lightning, the Hugging Face ``Trainer``, and ``torch.distributed``.

Each name imports its framework on first use, so ``import lrdoctor.integrations`` costs
nothing; a missing framework raises an error naming the extra to install.

=====================================  ==========================================================
``lightning.LRDoctorCallback``         Lightning callback: monitor log, journal, diagnosis, report
``lightning.find_lr``                  the LR range test on a ``LightningModule``
``hf.LRDoctorCallback``                ``transformers.TrainerCallback`` doing the same
``ranks.RankMonitor``                  a Monitor for ``torchrun``: mean loss over ranks, rank 0 writes
``ranks.diagnose_ranks``               the ``ranks-diverge`` finding from per-rank logs (pure)
=====================================  ==========================================================

The run directory every integration writes (see :class:`~lrdoctor.integrations.RunFiles`)::

    <out_dir>/log.jsonl        the Monitor's JSONL log (what ``lrdoctor.logs.load`` reads)
    <out_dir>/journal.jsonl    every LR decision, one JSON object a line
    <out_dir>/diagnosis.json   ``lrdoctor diagnose --json`` output, written when training ends
    <out_dir>/report.html      the HTML report, written when training ends
"""

from __future__ import annotations

from typing import Any

from lrdoctor.integrations._run import RunFiles

_SUBMODULES = ("hf", "lightning", "ranks")

__all__ = ["RunFiles", "hf", "lightning", "ranks"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
