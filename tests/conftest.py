"""Shared test fixtures: where the real videos are."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-video folder (../shared/data beside the checkout, also in CI)."""
    assert SHARED_DATA.is_dir(), f"{SHARED_DATA} missing: tests need the shared real videos beside the checkout"
    return SHARED_DATA


@pytest.fixture(scope="session")
def samples() -> Path:
    """The sample GRID clips committed in the repo (A: one man, B: three women)."""
    return SAMPLES
