"""Training logs as writers leave them, and the damage files meet in practice (a kill, a full
disk, a power loss, a copy cut short, a hand edit, another encoding): for the fuzz tests.

Every generator takes a ``random.Random`` so that a hypothesis-drawn seed picks the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import random

__all__ = ["DAMAGES", "KINDS", "csv_text", "damage"]

ODD = [0.0, -2.0, 1e308, -1e308, 1e-320, float("nan"), float("inf"), float("-inf"), 3, 10**30]


def _num(rng: random.Random) -> float:
    return round(rng.uniform(0, 3), 4) if rng.random() < 0.6 else rng.choice(ODD)


def _steps(rng: random.Random, n: int, clean: bool = False) -> list:
    k = 0.0 if clean else rng.random()
    if k < 0.5:
        return list(range(n))
    if k < 0.7:
        return sorted(rng.randrange(n) for _ in range(n))  # duplicated steps
    if k < 0.85:
        return [rng.randrange(3 * n) for _ in range(n)]  # out of order
    return [rng.choice([0, 1, 2, float("nan"), float("inf"), -5, 1e300, 2**60]) for _ in range(n)]


_COLUMNS = {"keras": ["epoch", "loss", "accuracy", "lr", "val_loss", "val_accuracy"],
            "lightning": ["epoch", "step", "train_loss_step", "val_loss", "lr-SGD"],
            "generic": ["iteration", "loss", "learning_rate", "grad_norm"]}


def csv_text(rng: random.Random, *, clean: bool = False, flavor: str | None = None) -> str:
    """A Keras CSVLogger, Lightning CSVLogger or generic CSV, written by the csv module."""
    n = rng.randint(1, 30)
    flavor = flavor or rng.choice(sorted(_COLUMNS))
    cols = _COLUMNS[flavor]
    steps = _steps(rng, n, clean)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for i in range(n):
        row: list = []
        for c in cols:
            if c in ("step", "iteration") or (c == "epoch" and flavor == "keras"):
                row.append(steps[i])
            elif c == "epoch":
                row.append(i // 5)
            elif flavor == "lightning" and rng.random() < 0.4:
                row.append("")  # Lightning's sparse rows
            else:
                row.append(round(rng.uniform(0, 3), 4) if clean else _num(rng))
        w.writerow(row)
    return buf.getvalue()


def _jsonl_text(rng: random.Random) -> str:
    n = rng.randint(1, 30)
    steps = _steps(rng, n)
    lines = [json.dumps({"type": "meta", "version": 1, "every": 1,
                         "step_unit": rng.choice(["step", "epoch", "x"])})]
    for i in range(n):
        vals = {"train/loss": _num(rng), "lr": rng.choice([0.1, 0.1, 0.05, _num(rng)]),
                "grad_norm": _num(rng)}
        if i % 5 == 4:
            vals["val/loss"] = _num(rng)
        lines.append(json.dumps({"type": "scalars", "step": steps[i], "epoch": i // 5,
                                 "values": vals}))
        if rng.random() < 0.1:
            lines.append(json.dumps({"type": "event", "step": steps[i], "code": "x",
                                     "message": "m"}))
    return "\n".join(lines) + "\n"


def _hf_text(rng: random.Random) -> str:
    n = rng.randint(1, 30)
    steps = _steps(rng, n)
    hist: list = []
    for i in range(n):
        hist.append({"step": steps[i], "epoch": i / 10, "loss": _num(rng),
                     "learning_rate": rng.choice([1e-3, 5e-4, _num(rng)]), "grad_norm": _num(rng)})
        if i % 5 == 4:
            hist.append({"step": steps[i], "eval_loss": _num(rng)})
    return json.dumps({"global_step": n, "log_history": hist}, indent=rng.choice([None, 2]))


def _history_text(rng: random.Random) -> str:
    n = rng.randint(1, 20)
    h: dict = {"loss": [_num(rng) for _ in range(n)],
               "val_loss": [_num(rng) for _ in range(rng.randint(0, n))], "lr": [0.1] * n}
    if rng.random() < 0.3:
        h = {"history": h, "epoch": [rng.choice([0, 1, "x", None, 2]) for _ in range(n)]}
    return json.dumps(h)


#: file name -> generator of its text
KINDS = {"log.csv": csv_text, "log.jsonl": _jsonl_text, "trainer_state.json": _hf_text,
         "history.json": _history_text}


def _cut(rng, raw):
    return raw[:rng.randrange(len(raw) + 1)]


def _nul_tail(rng, raw):
    return _cut(rng, raw) + b"\x00" * rng.randint(1, 600)


def _flip(rng, raw):
    b = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def _junk(rng, raw):
    i = rng.randrange(len(raw) + 1)
    return raw[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))) + raw[i:]


def _deep(rng, raw):
    i = raw.find(b"\n") + 1
    return raw[:i] + rng.choice([b"[", b'{"a":']) * 50_000 + b"\n" + raw[i:]


def _huge(rng, raw):
    return raw.replace(b"0.1", b"9" * rng.choice([400, 5000]), 1).replace(b"3", b"1e999", 1)


def _encoding(rng, raw):
    text = raw.decode()
    return rng.choice([codecs.BOM_UTF8 + raw, text.encode("utf-16"), text.encode("utf-32"),
                       codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
                       raw.replace(b"loss", "lössé".encode("latin-1"))])


#: name -> damage(rng, raw bytes) -> damaged bytes
DAMAGES = {"none": lambda rng, raw: raw, "cut": _cut, "nul-tail": _nul_tail, "flip": _flip,
           "junk": _junk, "deep": _deep, "huge": _huge, "encoding": _encoding,
           "empty": lambda rng, raw: b""}


def damage(name: str, rng: random.Random, raw: bytes) -> bytes:
    return DAMAGES[name](rng, raw)
