from pathlib import Path

import pytest
from predict_data import export_graph


@pytest.fixture(scope="session")
def predict_graph(golden_dir, tmp_path_factory) -> Path:
    return export_graph(golden_dir, tmp_path_factory.mktemp("predict-graph"))
