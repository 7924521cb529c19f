"""FreSca (arXiv 2504.02154): frequency-scaled classifier-free guidance.

    from reprolab.papers.fresca import FreScaConfig, fresca_guidance, fresca_pipeline
    eps = fresca_guidance(eps_uncond, eps_cond, guidance_scale=7.5, config=FreScaConfig(scale_high=1.25))
    with fresca_pipeline(pipe, FreScaConfig(scale_high=1.25)):   # any diffusers pipeline with CFG
        image = pipe(prompt, guidance_scale=7.5).images[0]
"""

from .fresca import (
    MASKS,
    FreSca,
    FreScaConfig,
    band_energy,
    energy_cutoff,
    frequency_scale,
    fresca_guidance,
    fresca_prediction,
    low_frequency_mask,
    radial_power_spectrum,
)

__all__ = [
    "MASKS",
    "FreSca",
    "FreScaConfig",
    "band_energy",
    "energy_cutoff",
    "frequency_scale",
    "fresca_guidance",
    "fresca_prediction",
    "low_frequency_mask",
    "radial_power_spectrum",
    "FreScaDenoiser",
    "fresca_pipeline",
    "FreScaGuidance",
]


def __getattr__(name: str):  # integrations import diffusers only when asked for
    if name in ("FreScaDenoiser", "fresca_pipeline", "FreScaGuidance"):
        from . import integrations

        return getattr(integrations, name)
    raise AttributeError(name)
