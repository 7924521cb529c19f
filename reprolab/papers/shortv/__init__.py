"""ShortV (arXiv 2504.00502): freeze visual tokens in the layers that do not need them.

    from reprolab.papers.shortv import layer_contribution, apply_shortv, remove_shortv, FastVConfig
    lc = layer_contribution(model, processor, samples, n=40, seed=0)   # LC per layer, visual and text
    apply_shortv(model, lc.lowest(len(lc.visual) // 2))                # freeze visual tokens there
    model.generate(**inputs)                                          # KV cache still works
    remove_shortv(model)
"""

from .shortv import (
    PAPER_TABLE1,
    PAPER_TEXT_TOKENS,
    SUPPORTED_MODELS,
    FastVConfig,
    FrozenTokenLayer,
    LayerContribution,
    apply_fastv,
    apply_shortv,
    calibration_samples,
    check_supported,
    decoder_layers,
    generation_flops,
    layer_contribution,
    layer_flops,
    measured_flops,
    paper_tflops,
    prefill_flops,
    remove_shortv,
    visual_positions,
)

__all__ = [
    "PAPER_TABLE1",
    "PAPER_TEXT_TOKENS",
    "SUPPORTED_MODELS",
    "FastVConfig",
    "FrozenTokenLayer",
    "LayerContribution",
    "apply_fastv",
    "apply_shortv",
    "calibration_samples",
    "check_supported",
    "decoder_layers",
    "generation_flops",
    "layer_contribution",
    "layer_flops",
    "measured_flops",
    "paper_tflops",
    "prefill_flops",
    "remove_shortv",
    "visual_positions",
]
