"""Puts the tiny third-party model and the test helpers (beside the tests) on sys.path; one host fixture.

Exports are slow (seconds per graph), so tiny_vae is trained and exported once per
session (``tiny``), and the tests read or copy the result.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # the tiny third-party model and the test helpers live beside the tests
    sys.path.insert(0, str(TESTS))

from zoo_export_testing import Exported, export_tiny, install_host_fixture  # noqa: E402

install_host = pytest.fixture(install_host_fixture)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """tiny_vae trained for 2 steps and exported with fp16 files, once for all of zoo-export's tests."""
    return export_tiny(tmp_path_factory.mktemp("tiny"))
