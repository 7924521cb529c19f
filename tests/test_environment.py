"""The project's environment: nothing may install torchvision or torchaudio (issue 29, item 7).

Their PyPI wheels for torch 2.13 are CUDA builds whose ops fail to load on this CPU stack, and once
installed they break ``transformers`` and ``diffusers`` imports.
"""

from __future__ import annotations

import importlib.util

import pytest


@pytest.mark.parametrize("module", ["torchvision", "torchaudio"])
def test_not_importable(module):
    assert importlib.util.find_spec(module) is None, (
        f"{module} is installed in the project's environment; uninstall it (pip uninstall {module}): "
        "its torch-2.13 wheel breaks transformers and diffusers imports")
