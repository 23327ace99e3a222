"""The example data sets, as numpy arrays: generated or bundled locally, never downloaded.

- ``digits``: scikit-learn's bundled 8x8 handwritten digits, scaled to [0, 1].
- ``mnist1d``: MNIST-1D made by the ``mnist1d`` package. Its generator reseeds numpy's and
  Python's global RNGs, so the call runs with those (and torch's) states saved and restored; the
  arrays are cached in memory and, unless ``LRDOCTOR_CACHE_DIR`` is set to an empty string, in
  a ``.npz`` under the user cache directory.
- ``chars``: a character corpus made of the Python standard library's own source files.

Splits are fixed (they do not depend on the task seed), so a seed changes the initialisation and
the batch order only, and results over seeds compare the same data.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import random
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from lrdoctor.errors import LRDoctorError

__all__ = ["Data", "VOCAB", "chars", "decode_chars", "digits", "mnist1d"]

#: Source files of the character corpus, in order (stdlib modules with pure-Python source).
CORPUS_MODULES = (
    "textwrap", "shlex", "heapq", "bisect", "fnmatch", "calendar", "string", "glob",
    "base64", "sched", "queue", "colorsys", "graphlib", "pprint", "fractions",
)
#: The character vocabulary: tab, newline, printable ASCII; anything else maps to '?'.
VOCAB = "\t\n" + "".join(chr(c) for c in range(32, 127))


@dataclass(frozen=True, eq=False)
class Data:
    """Train / validation / test arrays of one task (numpy; inputs float32 or int64 tokens).

    Replace any of them to inject a fault, e.g.
    ``task.with_data(x_train=task.data.x_train * 255)``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    def replace(self, **changes: Any) -> Data:
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise LRDoctorError(f"Data has no field(s) {unknown}; fields: {sorted(names)}")
        return replace(self, **changes)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the split ``'train'``, ``'val'`` or ``'test'``."""
        if name not in ("train", "val", "test"):
            raise LRDoctorError(f"split must be 'train', 'val' or 'test', got {name!r}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def summary(self) -> str:
        return (f"train {len(self.y_train)}, val {len(self.y_val)}, test {len(self.y_test)}; "
                f"x {tuple(self.x_train.shape[1:])} {self.x_train.dtype}")


def _split_indices(n: int, fractions_: tuple[float, float], seed: int) -> tuple[np.ndarray, ...]:
    perm = np.random.default_rng(seed).permutation(n)
    a = round(n * fractions_[0])
    b = a + round(n * fractions_[1])
    return perm[:a], perm[a:b], perm[b:]


_MEMO: dict[str, Any] = {}


def digits() -> Data:
    """scikit-learn digits: 1797 images 8x8 in [0, 1] -> 1077 train / 360 val / 360 test."""
    if "digits" not in _MEMO:
        try:
            from sklearn.datasets import load_digits
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("the digits examples need scikit-learn: "
                              "pip install 'lrdoctor[examples]'") from err
        bunch = load_digits()
        x = (bunch.data / 16.0).astype(np.float32)
        y = bunch.target.astype(np.int64)
        tr, va, te = _split_indices(len(y), (0.6, 0.2), seed=20240)
        _MEMO["digits"] = Data(x[tr], y[tr], x[va], y[va], x[te], y[te], n_classes=10)
    return _MEMO["digits"]


def _cache_dir() -> Path | None:
    env = os.environ.get("LRDOCTOR_CACHE_DIR")
    if env is not None:
        return Path(env) if env.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lrdoctor"


def _generate_mnist1d() -> dict[str, np.ndarray]:
    """Run mnist1d's generator with every global RNG state saved and restored afterwards."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the mnist1d example needs the mnist1d package: "
                          "pip install 'lrdoctor[examples]'") from err
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = None
    try:
        import torch

        torch_state = torch.random.get_rng_state()
    except ImportError:  # pragma: no cover
        torch = None  # type: ignore[assignment]
    try:
        raw = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if torch_state is not None:
            torch.random.set_rng_state(torch_state)
    return {k: np.asarray(raw[k]) for k in ("x", "y", "x_test", "y_test")}


def mnist1d() -> Data:
    """MNIST-1D (default arguments): 4000 -> 3000 train / 1000 val, and 1000 test; length 40."""
    if "mnist1d" in _MEMO:
        return _MEMO["mnist1d"]
    arrays: dict[str, np.ndarray] | None = None
    cache = _cache_dir()
    path = cache / "mnist1d-default-v1.npz" if cache is not None else None
    if path is not None and path.exists():
        try:
            with np.load(path) as npz:
                arrays = {k: npz[k] for k in ("x", "y", "x_test", "y_test")}
        except (OSError, KeyError, ValueError):
            arrays = None
    if arrays is None:
        arrays = _generate_mnist1d()
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
                np.savez_compressed(tmp, **arrays)
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only home is fine: the memory cache still holds
    x = arrays["x"].astype(np.float32)
    y = arrays["y"].astype(np.int64)
    data = Data(x[:3000], y[:3000], x[3000:], y[3000:],
                arrays["x_test"].astype(np.float32), arrays["y_test"].astype(np.int64),
                n_classes=10)
    _MEMO["mnist1d"] = data
    return data


def corpus_text(max_chars: int = 200_000) -> str:
    """The standard-library corpus: :data:`CORPUS_MODULES` sources joined, cut at ``max_chars``."""
    key = f"text:{max_chars}"
    if key not in _MEMO:
        parts = []
        for name in CORPUS_MODULES:
            spec = importlib.util.find_spec(name)
            origin = getattr(spec, "origin", None)
            if not origin or not origin.endswith(".py") or not os.path.exists(origin):
                continue
            parts.append(Path(origin).read_text(encoding="utf-8", errors="replace"))
        text = "\n".join(parts)[:max_chars]
        if len(text) < 20_000:
            raise LRDoctorError(
                f"the standard-library corpus has only {len(text)} characters (the sources of "
                f"{', '.join(CORPUS_MODULES)} were not found); this Python ships no .py sources"
            )
        _MEMO[key] = text
    return _MEMO[key]


def encode_chars(text: str) -> np.ndarray:
    table = np.full(128, VOCAB.index("?"), dtype=np.int64)
    for i, ch in enumerate(VOCAB):
        table[ord(ch)] = i
    codes = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8)
    return table[np.minimum(codes, 127)]


def decode_chars(tokens: Any) -> str:
    return "".join(VOCAB[int(t)] for t in np.asarray(tokens).ravel())


def chars(seq_len: int = 64, max_chars: int = 200_000) -> Data:
    """Next-character windows: the corpus split 90/5/5 in order, cut into ``seq_len + 1`` chunks.

    ``x`` holds ``seq_len`` tokens and ``y`` the same window shifted by one character.
    """
    key = f"chars:{seq_len}:{max_chars}"
    if key not in _MEMO:
        tokens = encode_chars(corpus_text(max_chars))
        n = len(tokens)
        cuts = (0, int(n * 0.9), int(n * 0.95), n)
        out = []
        for a, b in itertools.pairwise(cuts):
            seg = tokens[a:b]
            count = (len(seg) - 1) // seq_len
            if count < 1:
                raise LRDoctorError(f"seq_len {seq_len} is longer than a corpus split; lower it")
            idx = np.arange(count)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
            win = seg[idx]
            out += [win[:, :-1].copy(), win[:, 1:].copy()]
        _MEMO[key] = Data(*out, n_classes=len(VOCAB))
    return _MEMO[key]


def fingerprint(data: Data) -> str:
    """A short hash of every array, for tests and benchmark records."""
    h = hashlib.sha256()
    for f in fields(data):
        v = getattr(data, f.name)
        raw = np.ascontiguousarray(v).tobytes() if isinstance(v, np.ndarray) else repr(v).encode()
        h.update(raw)
    return h.hexdigest()[:16]
