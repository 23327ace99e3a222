"""Every fenced block in README.md and docs/**/*.md runs as written, or says why not.

The info string after the opening fence decides what a block is:

- ```` ```python ```` (or ``py``): runs. A page's Python blocks run in order, in one namespace,
  in a fresh temporary working directory, so a later block sees what an earlier one defined
  and the files it wrote. A page makes its own inputs (a few lines that train a bundled
  example and write the log it reads); :data:`PRELUDES` holds the rare exception, printed here.
- ```` ```python fragment ````: a piece of the reader's own program (their model, a GPU): not
  run, but it must compile.
- ```` ```bash ```` / ``sh`` / ``shell`` / ``console``: every command line runs, in the same
  working directory, after the Python blocks above it, with this venv's ``lrdoctor`` entry
  point and Python (``console`` blocks: the ``$ `` lines; the rest is their output). An
  unmarked shell block may only call ``lrdoctor`` or ``python``; anything else (``make``,
  ``pip install``, ``torchrun``) or a synopsis with ``[OPTIONS]`` goes in ```` ```bash fragment ````.
  A command must exit 0, or 0/1 when it passes ``--fail-on`` (exit 1 = findings, by design).
- any other info string (``text``, ``json``, ``output``, ``toml``...): data, never run.
- no info string at all: an error, so that no block escapes by being forgotten.

A page whose blocks import a package that is not installed (Keras, transformers, Lightning,
MLflow, W&B) is skipped, saying which.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PAGES = sorted(str(p.relative_to(ROOT)) for p in [ROOT / "README.md", *ROOT.glob("docs/**/*.md")])
PYTHON = ("python", "py")
SHELL = ("bash", "sh", "shell", "console")
FLAGS = ("fragment",)
#: programs an unmarked shell block may call
PROGRAMS = ("lrdoctor", "python")
#: packages whose absence skips a page instead of failing it
OPTIONAL = ("torch", "keras", "transformers", "pytorch_lightning", "lightning", "mlflow", "wandb",
            "tensorboard", "sklearn")
#: page -> code run before its first block, for what a reader has and a page cannot make
#: (none so far: every page makes its own inputs)
PRELUDES: dict[str, str] = {}
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    flags: tuple[str, ...]
    code: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: str) -> list[Block]:
    """The fenced blocks of a page (CommonMark fences: ``` or ~~~, up to 3 spaces indented)."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3).strip()
        j = i + 1
        while j < len(lines) and not re.match(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$", lines[j]):
            j += 1
        body = [line[min(indent, len(line) - len(line.lstrip(" "))):] for line in lines[i + 1:j]]
        words = info.split()
        out.append(Block(page, i + 1, words[0] if words else "", tuple(words[1:]),
                         "\n".join(body) + "\n"))
        i = j + 1
    return out


def commands(block: Block) -> list[str]:
    """The command lines of a shell block (``\\`` continuations joined, comments dropped)."""
    text = block.code
    if block.lang == "console":
        text = "\n".join(line[2:] for line in text.splitlines() if line.startswith("$ "))
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(line)
    return out


def problems(block: Block) -> list[str]:
    """What is wrong with how a block is marked (empty when nothing)."""
    if not block.lang:
        return [(f"{block.where}: a fence without an info string; say what it is (python, "
                f"python fragment, bash, bash fragment, text, json...)")]
    if block.lang not in (*PYTHON, *SHELL):
        return []  # data
    bad = [f for f in block.flags if f not in FLAGS]
    if bad:
        return [(f"{block.where}: unknown flag(s) {bad} after {block.lang!r}; the one flag is "
                f"'fragment'")]
    if block.lang in PYTHON and "fragment" in block.flags:
        try:
            compile(block.code, block.where, "exec")
        except SyntaxError as err:
            return [f"{block.where}: a python fragment must still compile: {err}"]
    if block.lang in SHELL and "fragment" not in block.flags:
        out = []
        for cmd in commands(block):
            words = shlex.split(cmd, comments=True)
            program = words[0]
            if words[:3] == ["python", "-m", "pip"]:
                program = "python -m pip"
            if program not in PROGRAMS:
                out.append(f"{block.where}: {program!r} in an unmarked shell block (only "
                           f"{', '.join(PROGRAMS)} run); mark it '{block.lang} fragment'")
            elif "[" in cmd and "]" in cmd and "--" in cmd.split("[", 1)[1]:
                out.append(f"{block.where}: {cmd!r} looks like a synopsis ([OPTIONS]); mark it "
                           f"'{block.lang} fragment'")
        if not commands(block):
            out.append(f"{block.where}: a {block.lang} block with no command")
        return out
    return []


@pytest.mark.parametrize("page", PAGES)
def test_every_block_is_marked(page):
    found = [p for b in blocks(page) for p in problems(b)]
    assert not found, "\n".join(found)


def _run_shell(block: Block, cwd: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg", KERAS_BACKEND="torch", OMP_NUM_THREADS="1",
               PYTHONWARNINGS="ignore")
    for cmd in commands(block):
        argv = shlex.split(cmd, comments=True)
        argv[0] = str(BIN / "lrdoctor") if argv[0] == "lrdoctor" else sys.executable
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        allowed = (0, 1) if "--fail-on" in argv else (0,)
        if done.returncode not in allowed:
            raise AssertionError(f"{block.where}: `{cmd}` exited {done.returncode}\n"
                                 f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def _runnable(page: str) -> list[Block]:
    return [b for b in blocks(page) if b.lang in (*PYTHON, *SHELL) and "fragment" not in b.flags]


@pytest.mark.parametrize("page", [p for p in PAGES if _runnable(p)])
def test_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    code = PRELUDES.get(page)
    if code:
        exec(compile(code, f"{page}[prelude]", "exec"), namespace)  # noqa: S102 (runs the docs)
    for block in _runnable(page):
        if block.lang in SHELL:
            _run_shell(block, tmp_path)
            continue
        try:
            exec(compile(block.code, block.where, "exec"), namespace)  # noqa: S102
        except ModuleNotFoundError as err:
            if err.name and err.name.split(".")[0] in OPTIONAL:
                pytest.skip(f"{block.where} needs {err.name}, which is not installed")
            raise
        except Exception as err:  # the page and line are the point of the message
            raise AssertionError(f"{block.where} failed: {err!r}\n{block.code}") from err


def test_the_runner_reads_fences_and_marks(tmp_path, monkeypatch):
    """The parser and the marking rules on a page made up here (they must be able to fail)."""
    page = tmp_path / "page.md"
    page.write_text("text\n```python\nx = 1\n```\n\n  ~~~~bash fragment\n  make test\n  ~~~~\n"
                    "```\nbare\n```\n```console\n$ lrdoctor --version\nlrdoctor 1.0\n```\n"
                    "```bash\npython -m pip install lrdoctor\n```\n```python fragment\ndef f(:\n```\n"
                    "```json\n{not code\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    got = blocks("page.md")
    assert [(b.line, b.lang, b.flags) for b in got] == [
        (2, "python", ()), (6, "bash", ("fragment",)), (9, "", ()), (12, "console", ()),
        (16, "bash", ()), (19, "python", ("fragment",)), (22, "json", ())]
    assert got[1].code == "make test\n" and commands(got[3]) == ["lrdoctor --version"]
    marked = [bool(problems(b)) for b in got]
    assert marked == [False, False, True, False, True, True, False]


def test_the_runner_runs_shell_commands_and_fails_on_a_bad_one(tmp_path):
    ok = Block("page.md", 1, "bash", (), 'python -c "open(\'made\', \'w\').write(\'x\')"\n'
                                         "lrdoctor schedule 'constant(0.1, steps=5)' --json s.json\n")
    _run_shell(ok, tmp_path)
    assert (tmp_path / "made").read_text() == "x" and (tmp_path / "s.json").is_file()
    bad = Block("page.md", 7, "console", (), "$ lrdoctor schedule 'cosine(0.1, stepz=10)'\nerror\n")
    with pytest.raises(AssertionError, match=r"page.md:7: .* exited 2"):
        _run_shell(bad, tmp_path)
