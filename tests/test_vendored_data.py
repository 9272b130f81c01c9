"""The vendored copy of the upstream data (tests/data) is complete and equals its source."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
SHARED = DATA.parent.parent.parent / "shared"  # the shared folder beside the checkout, where it exists
SETS = ("golden", "digits")


def _files(root: Path) -> dict[str, Path]:
    return {
        p.relative_to(root).as_posix(): p
        for name in SETS
        if (root / name).is_dir()
        for p in sorted((root / name).rglob("*"))
        if p.is_file()
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_vendored_copy_matches_its_manifest():
    recorded = {}
    for line in (DATA / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        recorded[name] = digest
    present = _files(DATA)
    assert sorted(present) == sorted(recorded), "tests/data differs from MANIFEST.sha256 in its file list"
    changed = [name for name, path in present.items() if _sha256(path) != recorded[name]]
    assert not changed, f"vendored files changed without refreshing MANIFEST.sha256: {changed[:5]}"


@pytest.mark.skipif(
    not all((SHARED / name).is_dir() for name in SETS),
    reason="no shared data folder beside the checkout to compare the vendored copy with",
)
def test_vendored_copy_equals_shared_folder():
    vendored, shared = _files(DATA), _files(SHARED)
    assert sorted(vendored) == sorted(shared), (
        "tests/data and ../shared list different files; refresh them as tests/data/README.md says"
    )
    differ = [name for name in shared if _sha256(shared[name]) != _sha256(vendored[name])]
    assert not differ, f"tests/data is out of date with ../shared: {differ[:5]} (see tests/data/README.md)"
