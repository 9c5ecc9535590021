"""Shared fixtures.

Real sample data lives in ``../shared/data`` relative to the project root (override with
``RECONET_SAMPLE_DATA``). Locally a test that needs it is skipped when it is missing; in CI
(``CI=true``) it fails, so a broken checkout can never pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _sample_data_root() -> Path:
    env = os.environ.get("RECONET_SAMPLE_DATA")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data"


def require_path(path: Path) -> Path:
    """Return ``path`` if it exists; otherwise fail in CI, skip elsewhere."""
    if path.exists():
        return path
    message = f"sample data missing: {path}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return require_path(_sample_data_root())


@pytest.fixture(scope="session")
def sintel_root(sample_data: Path) -> Path:
    return require_path(sample_data / "sintel")


@pytest.fixture(scope="session")
def chairs_root(sample_data: Path) -> Path:
    return require_path(sample_data / "flyingchairs" / "FlyingChairs_release")


@pytest.fixture(scope="session")
def styles_dir(sample_data: Path) -> Path:
    return require_path(sample_data / "styles")


@pytest.fixture(scope="session")
def videos_dir(sample_data: Path) -> Path:
    return require_path(sample_data / "videos")


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
