"""ZClip (arXiv 2504.02507): adaptive gradient clipping by z-score of the gradient norm.

    from reprolab.papers.zclip import ZClip
    zclip = ZClip(max_grad_norm=None)
    loss.backward(); zclip.step(model); optimizer.step()
"""

from .zclip import ZClip, ZClipConfig, ZClipStep, scale_gradients_, total_grad_norm

__all__ = ["ZClip", "ZClipConfig", "ZClipStep", "ZClipLightningCallback", "ZClipTrainerCallback", "scale_gradients_", "total_grad_norm"]


def __getattr__(name: str):  # integrations import Lightning / transformers only when asked for
    if name in ("ZClipLightningCallback", "ZClipTrainerCallback"):
        from . import integrations

        return getattr(integrations, name)
    raise AttributeError(name)
