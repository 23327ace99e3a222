"""Every subcommand's output options write through what the path points to (issue 22).

For each subcommand and each of its output options: a symlink to a regular file stays a symlink
and its target gets the result; a symlink to a FIFO (how ``/dev/stdout`` looks when stdout is a
pipe) stays a link, the FIFO stays a FIFO and a reader gets the result; ``-`` prints the result
on standard output (the tables move to standard error); a missing folder is one ``error:`` line,
exit status 2, before any work. The real ``/dev/stdout`` is only ever written to, by a
subprocess, and checked to be a link still.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import importlib
import io
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lrdoctor.cli import main

pytest.importorskip("torch")

SUFFIX = {"json": ".json", "csv": ".csv", "plot": ".png", "out": ".png", "gif": ".gif",
          "html": ".html"}


def check_content(option: str, data: bytes) -> None:
    """The bytes are a whole result of the option's kind."""
    if option == "json":
        assert isinstance(json.loads(data.decode()), dict)
    elif option == "csv":
        rows = list(csv.reader(io.StringIO(data.decode())))
        assert rows[0][:2] == ["step", "lr"] and len(rows) > 2
    elif option in ("plot", "out"):
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    elif option == "gif":
        assert data.startswith(b"GIF8")
    elif option == "html":
        assert data.lstrip().lower().startswith(b"<!doctype html") and data.rstrip().endswith(b">")
    else:  # pragma: no cover
        raise AssertionError(option)


def write_log(path: Path) -> Path:
    """A per-step CSV with a loss and a learning rate that halves once (diagnose and explain
    both read it)."""
    rows = ["step,epoch,train_loss,lr"]
    rows += [f"{k},{k // 10},{2.0 * 0.99 ** k:.5f},{0.1 if k < 30 else 0.05}" for k in range(60)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory):
    """One real (short) demo run; the demo tests hand it to the CLI instead of rerunning it."""
    from lrdoctor.demo import DemoConfig, run_demo

    config = dataclasses.replace(DemoConfig.quick(), epochs=2, n_train=200, finder_steps=40)
    return run_demo(tmp_path_factory.mktemp("demo"), config=config)


#: subcommand -> (its output options, the work a missing folder must prevent)
CASES = {
    "schedule": (("json", "csv", "plot"), "lrdoctor.cli._schedule.summarize"),
    "explain": (("json",), "lrdoctor.cli._explain.explain_path"),
    "diagnose": (("json", "html"), "lrdoctor.logs.load"),
    "find": (("json", "plot"), "lrdoctor.examples.get"),
    "lab": (("out", "json", "gif"), "lrdoctor.lab._run.run"),
    "lab-tour": (("json",), "lrdoctor.lab._tour.tour"),
    "demo": (("json",), "lrdoctor.demo.run_demo"),
}
PAIRS = [(cmd, option) for cmd, (options, _) in CASES.items() for option in options]


@pytest.fixture
def command(tmp_path, monkeypatch, request):
    """``command(name)`` -> the argv of a small, quick run of that subcommand."""
    import lrdoctor.demo
    import lrdoctor.lab._tour

    real_tour = lrdoctor.lab._tour.tour
    monkeypatch.setattr(lrdoctor.lab._tour, "tour",
                        functools.partial(real_tour, scenes=["sgd-bounce"]))

    def argv(name: str) -> list[str]:
        if name == "demo":
            result = request.getfixturevalue("demo_result")
            monkeypatch.setattr(lrdoctor.demo, "run_demo", lambda *a, **k: result)
            return ["demo", "--out", str(tmp_path / "demo-out"), "--quick"]
        log = str(write_log(tmp_path / "metrics.csv"))
        return {
            "schedule": ["schedule", "warmup(3) >> cosine(0.1, steps=20)"],
            "explain": ["explain", log],
            "diagnose": ["diagnose", log],
            "find": ["find", "--example", "digits-mlp", "--steps", "20", "--repeats", "1",
                     "--no-zoom"],
            "lab": ["lab", "valley", "-o", "sgd:1e-2", "--steps", "20"],
            "lab-tour": ["lab", "--tour", "--out", str(tmp_path / "tour")],
        }[name]

    return argv


class FifoReader:
    """A FIFO at ``path`` read whole by a thread; :meth:`data` joins it (and unblocks a reader
    nobody wrote to, so a failing test cannot hang)."""

    def __init__(self, path: Path):
        os.mkfifo(path)
        self.path, self.box = path, {}
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.path, "rb") as fh:
            self.box["data"] = fh.read()

    def data(self) -> bytes:
        self.thread.join(timeout=20)
        if self.thread.is_alive():  # nobody opened it for writing: give the reader its EOF
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            self.thread.join(timeout=5)
        return self.box.get("data", b"")


@pytest.mark.parametrize("name", sorted(CASES))
def test_symlink_to_a_file_stays_a_link(name, command, tmp_path, capsys):
    options = CASES[name][0]
    argv = command(name)
    for option in options:
        target = tmp_path / f"real-{option}{SUFFIX[option]}"
        target.write_text("old")
        os.chmod(target, 0o640)
        (tmp_path / f"link-{option}{SUFFIX[option]}").symlink_to(target.name)
        argv += [f"--{option}", str(tmp_path / f"link-{option}{SUFFIX[option]}")]
    assert main(argv) == 0, capsys.readouterr().err
    for option in options:
        link = tmp_path / f"link-{option}{SUFFIX[option]}"
        assert link.is_symlink() and os.readlink(link) == f"real-{option}{SUFFIX[option]}"
        target = tmp_path / f"real-{option}{SUFFIX[option]}"
        check_content(option, target.read_bytes())
        assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the target's mode is kept
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"


@pytest.mark.parametrize("name", sorted(CASES))
def test_symlink_to_a_fifo_like_dev_stdout(name, command, tmp_path, capsys):
    """``/dev/stdout`` on a pipe is a link to a FIFO: written through, never renamed over."""
    options = CASES[name][0]
    argv = command(name)
    readers = {}
    for option in options:
        readers[option] = FifoReader(tmp_path / f"fifo-{option}")
        link = tmp_path / f"stdout-{option}"
        link.symlink_to(readers[option].path)
        argv += [f"--{option}", str(link)]
    rc = main(argv)
    data = {option: reader.data() for option, reader in readers.items()}
    assert rc == 0, capsys.readouterr().err
    for option in options:
        check_content(option, data[option])
        assert (tmp_path / f"stdout-{option}").is_symlink()
        assert stat.S_ISFIFO(os.stat(tmp_path / f"fifo-{option}").st_mode)


def test_a_fifo_itself(tmp_path, capsys):
    reader = FifoReader(tmp_path / "pipe")
    assert main(["schedule", "constant(0.1, steps=10)", "--json", str(reader.path)]) == 0
    assert json.loads(reader.data())["lrs"] == [0.1] * 11
    assert stat.S_ISFIFO(os.stat(reader.path).st_mode)


@pytest.mark.parametrize(("name", "option"), PAIRS)
def test_dash_is_standard_output(name, option, command, capsysbinary):
    assert main([*command(name), f"--{option}", "-"]) == 0
    out, err = capsysbinary.readouterr()
    check_content(option, out)  # the whole of stdout is the result: the tables went to stderr
    assert err.strip(), "the human-readable output should still be shown, on stderr"


@pytest.mark.parametrize(("name", "option"), PAIRS)
def test_missing_folder_is_refused_before_any_work(name, option, command, tmp_path, capsys,
                                                   monkeypatch):
    argv = [*command(name), f"--{option}", str(tmp_path / "no-such-folder" / f"x{SUFFIX[option]}")]
    module, _, attr = CASES[name][1].rpartition(".")

    def no_work(*args, **kwargs):
        raise AssertionError(f"{CASES[name][1]} ran although --{option}'s folder is missing")

    monkeypatch.setattr(importlib.import_module(module), attr, no_work)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no-such-folder" in lines[0]


def test_two_outputs_on_stdout_are_refused(capsys):
    assert main(["schedule", "constant(0.1, steps=10)", "--json", "-", "--csv", "-"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error:") and "--csv" in err and "--json" in err


def test_a_picture_is_not_sent_to_a_terminal(monkeypatch, capsys):
    import lrdoctor.cli._common as common

    monkeypatch.setattr(common, "_stdout_is_terminal", lambda: True)
    assert main(["schedule", "constant(0.1, steps=10)", "--plot", "-"]) == 2
    assert "terminal" in capsys.readouterr().err


def test_a_folder_or_an_unknown_picture_suffix_is_refused(tmp_path, capsys):
    assert main(["schedule", "constant(0.1, steps=10)", "--json", str(tmp_path)]) == 2
    assert "folder" in capsys.readouterr().err
    assert main(["schedule", "constant(0.1, steps=10)", "--plot", str(tmp_path / "lr.txt")]) == 2
    assert "'.txt' is not a picture format" in capsys.readouterr().err
    assert not (tmp_path / "lr.txt").exists()


def _cli(*args: str, stdout) -> subprocess.CompletedProcess:
    code = "import sys; from lrdoctor.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], stdout=stdout,
                          stderr=subprocess.PIPE, timeout=120, check=False)


@pytest.mark.skipif(not os.path.islink("/dev/stdout"), reason="needs /dev/stdout as a link")
def test_real_dev_stdout_on_a_pipe_and_on_a_file(tmp_path):
    before = os.readlink("/dev/stdout")
    done = _cli("schedule", "constant(0.1, steps=10)", "--json", "/dev/stdout",
                stdout=subprocess.PIPE)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["lrs"] == [0.1] * 11  # stdout holds the JSON alone
    assert b"previewed" in done.stderr  # the table went to stderr
    with open(tmp_path / "out.json", "wb") as fh:  # `... --json /dev/stdout > out.json`
        done = _cli("schedule", "constant(0.1, steps=10)", "--json", "/dev/stdout", stdout=fh)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads((tmp_path / "out.json").read_text())["spec"] == "constant(0.1, steps=10)"
    assert os.path.islink("/dev/stdout") and os.readlink("/dev/stdout") == before
