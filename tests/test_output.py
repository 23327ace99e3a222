"""``lrdoctor._output``: results are written through links, in place on FIFOs, atomically on files."""

from __future__ import annotations

import io
import os
import stat
import threading

import pytest

from lrdoctor._output import figure_format, save_figure, write_file
from lrdoctor.errors import LRDoctorError


def test_a_new_file_gets_the_umask_mode_and_no_temp_file_stays(tmp_path):
    mask = os.umask(0o022)
    try:
        write_file(tmp_path / "a.json", "{}\n")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").read_text() == "{}\n"
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["a.json"]


def test_an_existing_file_is_replaced_whole_and_keeps_its_mode(tmp_path):
    target = tmp_path / "a.csv"
    target.write_text("x" * 1000)
    os.chmod(target, 0o600)
    before = target.stat().st_ino
    assert write_file(target, b"step,lr\n") == target
    assert target.read_bytes() == b"step,lr\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.stat().st_ino != before  # renamed over: a reader never sees half a file


def test_links_are_followed_even_chains_and_dangling_ones(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "real.json").write_text("old")
    (tmp_path / "one").symlink_to("sub/real.json")
    (tmp_path / "two").symlink_to("one")
    assert write_file(tmp_path / "two", "new") == (tmp_path / "sub" / "real.json").resolve()
    assert (tmp_path / "one").is_symlink() and (tmp_path / "two").is_symlink()
    assert (tmp_path / "sub" / "real.json").read_text() == "new"
    (tmp_path / "dangling").symlink_to("sub/later.json")
    write_file(tmp_path / "dangling", "made")
    assert (tmp_path / "dangling").is_symlink()
    assert (tmp_path / "sub" / "later.json").read_text() == "made"


def test_a_fifo_and_a_character_device_are_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = {}
    reader = threading.Thread(target=lambda: got.update(data=fifo.read_bytes()), daemon=True)
    reader.start()
    write_file(fifo, b"through the pipe")
    reader.join(timeout=10)
    assert got["data"] == b"through the pipe" and stat.S_ISFIFO(os.stat(fifo).st_mode)
    write_file("/dev/null", "gone")  # never renamed over: /dev/null stays a device
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_file(tmp_path / "missing" / "a.json", "{}")
    with pytest.raises(IsADirectoryError):
        write_file(tmp_path, "{}")
    if os.geteuid() != 0:  # root may write anything
        (tmp_path / "ro.json").write_text("{}")
        os.chmod(tmp_path / "ro.json", 0o444)
        with pytest.raises(PermissionError):
            write_file(tmp_path / "ro.json", "[]")


def test_a_file_object_is_written_as_it_is():
    buf = io.BytesIO()
    assert write_file(buf, "é") is None
    assert buf.getvalue() == "é".encode()


def test_picture_formats_come_from_the_name_or_the_link_target(tmp_path):
    assert figure_format("lr.SVG") == "svg"
    assert figure_format(io.BytesIO()) == "png"
    assert figure_format(tmp_path / "noext") == "png"
    (tmp_path / "real.pdf").write_bytes(b"")
    (tmp_path / "link").symlink_to("real.pdf")
    assert figure_format(tmp_path / "link") == "pdf"
    with pytest.raises(LRDoctorError, match=r"'\.txt' is not a picture format"):
        figure_format("lr.txt")


def test_the_library_savers_write_through_a_link(tmp_path):
    from matplotlib.figure import Figure

    from lrdoctor.preview import plot_schedule
    from lrdoctor.report import Report

    for name in ("fig.png", "sched.svg", "report.html"):
        (tmp_path / name).write_text("old")
        (tmp_path / f"link-{name}").symlink_to(name)
    fig = Figure()
    fig.add_subplot(1, 1, 1).plot([0, 1])
    save_figure(fig, tmp_path / "link-fig.png", dpi=50)
    plot_schedule("cosine(0.1, steps=10)", tmp_path / "link-sched.svg")
    Report("t").write(tmp_path / "link-report.html")
    assert (tmp_path / "fig.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (tmp_path / "sched.svg").read_bytes()
    assert (tmp_path / "report.html").read_text().lower().startswith("<!doctype html")
    assert all((tmp_path / f"link-{n}").is_symlink() for n in ("fig.png", "sched.svg", "report.html"))
    buf = io.BytesIO()
    plot_schedule("cosine(0.1, steps=10)", buf)
    assert buf.getvalue().startswith(b"\x89PNG")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_file_behind_an_open_descriptor_is_added_to_not_replaced(tmp_path):
    """``--json /dev/stderr 2> err.txt``: the descriptor's file gets the bytes, and stays the
    file the descriptor writes to (a rename would leave it on a deleted inode)."""
    path = tmp_path / "err.txt"
    with open(path, "ab", buffering=0) as fh:
        fh.write(b"before\n")
        (tmp_path / "stderr").symlink_to(f"/proc/self/fd/{fh.fileno()}")
        write_file(tmp_path / "stderr", "{}\n")
        fh.write(b"after\n")
        assert os.path.samestat(os.fstat(fh.fileno()), os.stat(path))
    assert path.read_text() == "before\n{}\nafter\n"
