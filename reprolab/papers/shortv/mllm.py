"""The tiny Llava moved to the shared room :mod:`reprolab.nn.mllm` (issue 28: the MAYE paper trains it too).

This module re-exports it so that ``reprolab.papers.shortv.mllm`` keeps working for existing callers.
"""

from ...nn.mllm import (  # noqa: F401
    SPECIALS,
    MLLMConfig,
    ShapesVQAProcessor,
    TrainConfig,
    TrainOutput,
    accuracy_by_kind,
    answer_accuracy,
    answer_correct,
    answer_ids,
    build_mllm,
    build_tokenizer,
    config_dict,
    train_mllm,
)
