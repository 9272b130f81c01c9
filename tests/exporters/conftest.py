"""Fixtures of the exporter tests."""

import pytest
from export_cases import GoldenExports


@pytest.fixture(scope="session")
def golden_exports(tmp_path_factory) -> GoldenExports:
    return GoldenExports(tmp_path_factory.mktemp("golden_exports"))
