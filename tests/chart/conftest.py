from __future__ import annotations

import pytest

from tests.chart.chart import Renderer, build_renderer


@pytest.fixture(scope="session")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    return Renderer(build_renderer(tmp_path_factory.mktemp("helm-render")))
