from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny tensor ops: one intra-op thread is much faster than two on a shared 2-core machine.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
