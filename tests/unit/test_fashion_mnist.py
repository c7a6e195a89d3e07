"""The IDX reader, verification, fetching and shard bounds."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from serverless_hpc.data import fashion_mnist as fm
from tests.conftest import write_idx

LABELS = "t10k-labels-idx1-ubyte.gz"


def test_reads_a_valid_file_exactly(tmp_path: Path) -> None:
    # GIVEN a small IDX3 file made here
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x.gz", arr)
    # WHEN it is read
    out = fm.read_idx(path, expected_shape=(2, 3, 4))
    # THEN every byte comes back in place
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"cut": 5}, "payload truncated: 19 bytes, header promises 24"),
        ({"extra": b"\x00\x01"}, "has trailing bytes"),
        ({"magic": b"\x00\x00\x09\x03"}, "bad IDX magic number 0x00000903"),
        ({"magic": b"\x12\x34\x08\x03"}, "bad IDX magic number"),
    ],
)
def test_broken_files_name_the_file_and_the_problem(
    tmp_path: Path, kwargs: dict, fragment: str
) -> None:
    path = write_idx(tmp_path / "bad.gz", np.zeros((2, 3, 4), np.uint8), **kwargs)
    with pytest.raises(fm.DatasetError) as err:
        fm.read_idx(path)
    assert str(path) in str(err.value)
    assert fragment in str(err.value)


def test_truncated_gzip_stream_is_an_error(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "good.gz", np.ones((50, 28, 28), np.uint8))
    bad = tmp_path / "cut.gz"
    bad.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(fm.DatasetError, match=r"truncated gzip stream|corrupt gzip"):
        fm.read_idx(bad)


def test_not_gzip_at_all_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "plain.gz"
    bad.write_bytes(b"this is not gzip data at all")
    with pytest.raises(fm.DatasetError, match="corrupt gzip data"):
        fm.read_idx(bad)


def test_shape_other_than_expected_is_an_error(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x.gz", np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(
        fm.DatasetError, match=r"header says shape \(3, 28, 28\), expected \(10000, 28, 28\)"
    ):
        fm.read_idx(path, expected_shape=(10000, 28, 28))


def test_wrong_checksum_names_file_and_both_sums(tmp_path: Path) -> None:
    spec = fm.FILES["test"][1]
    path = write_idx(tmp_path / spec.name, np.zeros(10000, np.uint8))
    with pytest.raises(fm.DatasetError) as err:
        fm.verify_file(path, spec)
    msg = str(err.value)
    assert str(path) in msg and spec.md5 in msg and fm.md5sum(path) in msg


def test_load_split_refuses_a_non_canonical_copy(tmp_path: Path) -> None:
    # GIVEN files with the canonical names and valid structure but other content
    for spec in fm.FILES["test"]:
        write_idx(tmp_path / spec.name, np.zeros(spec.shape, np.uint8))
    # THEN loading with verification fails on the md5, never returning the wrong arrays
    with pytest.raises(fm.DatasetError, match="does not match the published"):
        fm.load_split("test", tmp_path)


def test_explicit_directory_with_missing_files_is_an_error_not_a_download(tmp_path: Path) -> None:
    with pytest.raises(fm.DatasetError, match="missing Fashion-MNIST file"):
        fm.ensure_data(tmp_path)


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        (-1, 5, "'start' must be >= 0"),
        (0, 11, "'end' must be <= 10"),
        (5, 5, "must be < 'end'"),
        (True, 3, "integer"),
    ],
)
def test_range_validation_names_the_bound(start: int, end: int, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        fm.validate_range(start, end, 10)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server standing in for the canonical mirror (serves a local folder)."""
    root = tmp_path / "mirror"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def synthetic_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A labels file made here, published (for this test) under the canonical name and md5.

    Only the md5 table changes, so ``fetch`` runs its real download and verification code on
    a machine without the real data.
    """
    labels = (np.arange(10000) % fm.NUM_CLASSES).astype(np.uint8)
    made = tmp_path / "made"
    made.mkdir()
    path = write_idx(made / LABELS, labels)
    spec = fm.IdxFile(LABELS, fm.md5sum(path), (10000,))
    monkeypatch.setitem(fm._BY_NAME, LABELS, spec)
    monkeypatch.setitem(fm.FILES, "test", (fm.FILES["test"][0], spec))
    return path.read_bytes()


def test_fetch_downloads_and_verifies(
    mirror: tuple[str, Path], synthetic_labels: bytes, tmp_path: Path
) -> None:
    # GIVEN a mirror serving the file whose md5 is the published one
    url, root = mirror
    (root / LABELS).write_bytes(synthetic_labels)
    dest = tmp_path / "cache"
    # WHEN it is fetched
    fm.fetch(dest, mirrors=[url], files=[LABELS], timeout_s=10)
    # THEN the file is in place and verified
    assert fm.md5sum(dest / LABELS) == fm.FILES["test"][1].md5


def test_fetch_rejects_a_corrupt_download_and_keeps_nothing(
    mirror: tuple[str, Path], synthetic_labels: bytes, tmp_path: Path
) -> None:
    url, root = mirror
    (root / LABELS).write_bytes(b"corrupted in transit")
    dest = tmp_path / "cache"
    with pytest.raises(fm.DatasetError, match=f"could not fetch {LABELS}.*md5"):
        fm.fetch(dest, mirrors=[url], files=[LABELS], timeout_s=10)
    assert list(dest.iterdir()) == []


def test_fetch_falls_back_to_the_next_mirror(
    mirror: tuple[str, Path], synthetic_labels: bytes, tmp_path: Path
) -> None:
    url, root = mirror
    (root / LABELS).write_bytes(synthetic_labels)
    dead = "http://127.0.0.1:9/"  # discard port: connection refused at once
    fm.fetch(tmp_path / "c", mirrors=[dead, url], files=[LABELS], timeout_s=5)
    assert (tmp_path / "c" / LABELS).is_file()


def test_fetch_with_every_mirror_unreachable_ends_with_the_offline_hint(tmp_path: Path) -> None:
    # GIVEN no mirror can be reached (an offline machine)
    dead = "http://127.0.0.1:9/"
    # WHEN a file is fetched
    with pytest.raises(fm.DatasetError) as err:
        fm.fetch(tmp_path / "c", mirrors=[dead], files=[LABELS], timeout_s=5)
    # THEN the error names the file and the mirror, and ends by saying how to proceed
    msg = str(err.value)
    assert msg.startswith(f"could not fetch {LABELS}: {dead}{LABELS}")
    assert msg.endswith(
        "Hint: set FASHION_MNIST_DIR (or pass --data-dir) to a directory holding the four "
        "files, or run 'shpc data fetch' with internet access."
    )


def test_verify_dir_names_the_first_non_canonical_file(tmp_path: Path) -> None:
    # GIVEN a directory with the four canonical names but other (well-formed) content
    for spec in fm._BY_NAME.values():
        write_idx(tmp_path / spec.name, np.zeros((1,), np.uint8))
    # WHEN it is verified THEN the md5 mismatch is reported with the file's path
    with pytest.raises(fm.DatasetError, match="does not match the published") as err:
        fm.verify_dir(tmp_path)
    assert str(tmp_path) in str(err.value)
