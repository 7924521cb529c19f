"""The shared offline encoders room (reprolab.nn.encoders)."""

import numpy as np
import pytest
import torch

from reprolab.errors import ShapeError
from reprolab.nn.encoders import HashEmbedder, imagenet_normalize


def test_imagenet_normalize_matches_the_formula_and_rejects_wrong_shapes():
    x = torch.rand(2, 3, 4, 4)
    y = imagenet_normalize(x)
    assert torch.allclose(y[:, 1], (x[:, 1] - 0.456) / 0.224)
    with pytest.raises(ShapeError):
        imagenet_normalize(torch.rand(2, 1, 4, 4))


def test_hash_embedder_is_deterministic_unit_norm_and_word_sensitive():
    e = HashEmbedder(64)
    a, b, c = e(["the cat sat", "the cat sat", "a dog ran"])
    assert np.allclose(a, b) and np.isclose(np.linalg.norm(a), 1.0)
    assert not np.allclose(a, c)


def test_old_import_paths_still_work():
    from reprolab.nn import encoders
    from reprolab.papers.grm.meta_rm import MiniLMEmbedder
    from reprolab.papers.vlm_sae.integrations import load_efficientnet_lite0

    assert MiniLMEmbedder is encoders.MiniLMEmbedder and load_efficientnet_lite0 is encoders.load_efficientnet_lite0
