"""The GIL is released while the engine works: Python threads run and
other runs overlap; progress reaches callables and tqdm; Ctrl-C stops a
run with KeyboardInterrupt and leaves no spill behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tenrso_ooc as ts


def test_progress_callback(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    x = ts.create(
        tmp_path / "x.zarr",
        (2048, 2048),
        chunks=(256, 256),
        fill="normal",
        progress=lambda label, done, total: calls.append((label, done, total)),
    )
    assert calls, "no progress reported"
    label, done, total = calls[-1]
    assert label == "generate"
    assert total == x.nbytes and done == total  # in bytes
    assert all(d <= t for _, d, t in calls)
    assert [d for _, d, _ in calls] == sorted(d for _, d, _ in calls)
    reported: list[tuple[str, int, int]] = []
    ts.sum(x, progress=lambda *a: reported.append(a))
    assert reported and reported[-1][1] == reported[-1][2] > 0


def test_progress_true_draws_a_tqdm_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = ts.create(tmp_path / "x.zarr", (1024, 1024), chunks=(128, 128), fill="uniform", progress=True)
    err = capsys.readouterr().err
    assert "generate: 100%" in err and "8.00M/8.00M" in err, err
    # One bar for a call of many stages, ending at the last.
    ts.parafac(x, 2, n_iter_max=3, tol=0, progress=True)
    err = capsys.readouterr().err
    assert "CP-ALS iteration 3/3" in err.splitlines()[-1] and "100%" in err.splitlines()[-1], err
    assert err.count("\n") == 1, err


def test_progress_is_reported_on_the_calling_thread(tmp_path: Path) -> None:
    threads: set[int] = set()
    x = ts.create(tmp_path / "x.zarr", (1024, 1024), chunks=(128, 128), fill="normal")
    ts.parafac(x, 2, n_iter_max=2, progress=lambda *_: threads.add(threading.get_ident()))
    ts.einsum("ij,kj->ik", x, x, progress=lambda *_: threads.add(threading.get_ident()))
    assert threads == {threading.get_ident()}


def test_a_failing_callback_stops_the_run(tmp_path: Path) -> None:
    def stop(label: str, done: int, total: int) -> None:
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        ts.create(tmp_path / "x.zarr", (4096, 4096), fill="normal", progress=stop)
    # The session still runs later work.
    assert ts.sum(ts.create(tmp_path / "y.zarr", (4,), fill="ones")) == 4.0


def test_the_gil_is_released_while_the_engine_works(tmp_path: Path) -> None:
    """Another Python thread stamps the clock every millisecond while one
    einsum runs: stamps land well inside the call (with the GIL held
    there would be none)."""
    x = ts.create(tmp_path / "x.zarr", (2048, 2048), chunks=(256, 256), fill="normal")
    stamps: list[float] = []
    running = threading.Event()
    running.set()

    def stamp() -> None:
        while running.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)

    ticker = threading.Thread(target=stamp)
    ticker.start()
    try:
        t0 = time.perf_counter()
        session = ts.Session(memory_limit="16MiB", threads=1)
        ts.einsum("ij,kj->ik", x, x, out=tmp_path / "g.zarr", session=session)
        t1 = time.perf_counter()
    finally:
        running.clear()
        ticker.join()
    assert t1 - t0 > 0.2, f"the call took {t1 - t0:.3f} s: too short to tell"
    inside = [t for t in stamps if t0 + 0.05 < t < t1 - 0.05]
    assert len(inside) > 20, (len(inside), t1 - t0)


def test_python_threads_run_and_runs_overlap(tmp_path: Path) -> None:
    x = ts.create(tmp_path / "x.zarr", (2048, 2048), chunks=(256, 256), fill="normal")
    spans: dict[str, list[float]] = {"a": [], "b": []}

    def run(name: str) -> None:
        session = ts.Session(memory_limit="16MiB", threads=1)
        ts.einsum(
            "ij,kj->ik",
            x,
            x,
            out=tmp_path / f"{name}.zarr",
            session=session,
            progress=lambda *a: spans[name].append(time.monotonic()),
        )

    threads = [threading.Thread(target=run, args=(name,)) for name in spans]
    ticks = 0
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        ticks += 1
        time.sleep(0.001)
    for t in threads:
        t.join()
    a, b = spans["a"], spans["b"]
    assert len(a) > 2 and len(b) > 2
    # Both runs were in progress at once, and this thread kept running.
    assert a[0] < b[-1] and b[0] < a[-1], (a[0], a[-1], b[0], b[-1])
    assert ticks > 50


# What each interrupted operation runs, and the stage half-way through
# which the SIGINT is sent.
INTERRUPTED = {
    "einsum": ("ts.einsum('ij,kj->ik', x, x, out=out, session=session, progress=interrupt)", ""),
    "parafac": ("ts.parafac(x, 4, n_iter_max=50, tol=0, session=session, progress=interrupt)", "iteration 2/"),
    "tucker": ("ts.tucker(x, [8, 8], n_iter_max=50, tol=0, session=session, progress=interrupt)", "iteration 2/"),
    "transpose": ("ts.transpose(x, out=out, chunks=(4096, 16), session=session, progress=interrupt)", ""),
}


@pytest.mark.parametrize("operation", sorted(INTERRUPTED))
def test_ctrl_c_interrupts_and_leaves_no_spill(tmp_path: Path, operation: str) -> None:
    """A real SIGINT, sent when a stage is half done (from its progress
    callback, so the timing is exact), cancels the run: KeyboardInterrupt
    within a task, the spill removed, the session usable again."""
    call, stage = INTERRUPTED[operation]
    spill = tmp_path / "spill"
    spill.mkdir()
    script = textwrap.dedent(
        f"""
        import os, signal, time, tenrso_ooc as ts
        session = ts.Session(memory_limit="16MiB", threads=1, spill_dirs=[{str(spill)!r}])
        x = ts.create({str(tmp_path / "x.zarr")!r}, (4096, 4096), chunks=(256, 256),
                      fill="normal", session=session)
        out = {str(tmp_path / "out.zarr")!r}
        sent = []
        def interrupt(label, done, total):
            if not sent and {stage!r} in label and total and done >= total // 2:
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)
        try:
            {call}
            print("finished", flush=True)
        except KeyboardInterrupt:
            print(f"interrupted {{time.monotonic() - sent[0]:.3f}}", flush=True)
        print("again", ts.sum(x, session=session) == float(ts.sum(x, memory_limit="64MiB")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    lines = out.stdout.split("\n")
    assert lines[0].startswith("interrupted"), out.stdout + out.stderr
    assert float(lines[0].split()[1]) < 5.0
    assert lines[1] == "again True"
    assert list(spill.iterdir()) == []
