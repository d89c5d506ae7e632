"""Codecs chosen by measurement, and the read cache for slicing loops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

import tenrso_ooc as ts


def _kinds(rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = 256
    y, x = np.mgrid[0:n, 0:n] / n
    mostly_zeros = np.zeros((n, n))
    mostly_zeros.flat[rng.choice(n * n, 40, replace=False)] = rng.standard_normal(40)
    return {
        "normal": rng.standard_normal((n, n)),
        "smooth": np.sin(6 * x) * np.cos(4 * y),
        "zeros": mostly_zeros,
    }


def test_auto_picks_by_measurement_and_zarr_python_reads_the_result(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    chosen = {}
    for name, values in _kinds(rng).items():
        np.save(tmp_path / f"{name}.npy", values)
        for goal in ("auto", "auto:size"):
            out = tmp_path / f"{name}-{goal.replace(':', '-')}.zarr"
            x = ts.import_file(tmp_path / f"{name}.npy", out, chunks=(64, 256), compression=goal)
            choice = x.attrs["tenrso_codec_choice"]
            figures = {c["codec"]: c for c in choice["candidates"]}
            measured = {"none", "lz4", "zstd:1", "zstd:3"}
            assert set(figures) == (measured | {"zstd:9"} if goal == "auto:size" else measured)
            key = "effective_bytes_per_second" if goal == "auto" else "ratio"
            best = max(figures.values(), key=lambda c: c[key])
            assert figures[choice["chosen"]][key] == best[key], choice
            # The array holds the chosen codec, and reads back bit for bit
            # with zarr-python.
            stored_as = {"none": "bytes → crc32c", "lz4": "blosc-lz4"}
            assert stored_as.get(choice["chosen"], choice["chosen"]) in x.info
            theirs = zarr.open_array(out, mode="r")
            np.testing.assert_array_equal(theirs[:], values)
            chosen[name, goal] = choice["chosen"]
    # Sizes differ by kind: random normals barely compress, the rest do.
    assert chosen["zeros", "auto:size"] != "none"
    assert chosen["smooth", "auto:size"] != "none"
    assert len({chosen[k, "auto:size"] for k in ("normal", "smooth", "zeros")}) >= 2, chosen
    # Mostly zeros compress by orders of magnitude: never stored raw.
    assert chosen["zeros", "auto"] != "none"


def test_auto_on_create_records_the_choice_and_zeros_are_refused(tmp_path: Path) -> None:
    x = ts.create(
        tmp_path / "r.zarr", (128, 128), chunks=(32, 128), fill="range", compression="auto:size"
    )
    # Consecutive integers: byte shuffle makes them very compressible.
    assert x.attrs["tenrso_codec_choice"]["chosen"] != "none"
    np.testing.assert_array_equal(x[:], np.arange(128 * 128, dtype=float).reshape(128, 128))
    with pytest.raises(ValueError, match="writes none"):
        ts.create(tmp_path / "z.zarr", (8, 8), compression="auto")
    with pytest.raises(ValueError, match="auto:speed or auto:size"):
        ts.create(tmp_path / "q.zarr", (8, 8), fill="ones", compression="auto:fast")


def test_a_cached_slicing_loop_reads_each_chunk_once_and_prefetches(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    values = rng.standard_normal((256, 64))
    x = ts.from_numpy(tmp_path / "x.zarr", values, chunks=(32, 64))
    for policy in ("learned", "arc", "lru", "lfu"):
        c = x.cached("1MiB", policy=policy, prefetch=2)
        for _ in range(2):
            for i in range(0, 256, 8):
                np.testing.assert_array_equal(c[i : i + 8], values[i : i + 8])
        stats = c.cache_stats()
        assert stats is not None
        # 8 chunks fit: each is read once (by a read or a prefetch).
        assert stats["misses"] + stats["prefetched"] <= 8, stats
        assert stats["hits"] + stats["misses"] == 64
        assert stats["correct_predictions"] >= 1
    assert x.cache_stats() is None
    with pytest.raises(ValueError, match="read-only"):
        c[0:1] = 1.0
    with pytest.raises(ValueError, match="unknown cache policy"):
        x.cached(policy="fifo")
