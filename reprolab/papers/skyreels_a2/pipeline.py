"""Elements-to-video on diffusers and transformers classes: SkyReels-A2's pipeline (official ``A2Pipeline`` and ``infer.py``).

    pipe = SkyReelsA2Pipeline(transformer=wan_i2v, vae=AutoencoderKLWan(...), image_encoder=CLIPVisionModel(...),
                              image_processor=CLIPImageProcessor(...), text_encoder=UMT5EncoderModel(...), tokenizer=tok,
                              scheduler=a2_scheduler())
    video = pipe([person, object, background], "a man holds a bear in the forest", num_frames=81).frames[0]
    pipe.save_mp4(video, "a2.mp4", fps=15)

What a call does, as the official code does it:

1. references: the first two (character, object) padded with white to the frame (``crop_resize_pad``), the
   third (background) centre-cropped (``crop_resize``); CLIP inputs padded to ``clip_size`` (512) squares;
2. the semantic path: each reference's CLIP ``hidden_states[-2]``, concatenated (3 x 257 tokens for ViT-H);
3. the spatial path: :func:`~.conditioning.prepare_condition` (pixel layout, VAE, normalisation, mask);
4. text: tokens padded to ``max_sequence_length``, encoder states trimmed to the prompt's length and zero-padded
   back (official ``_get_t5_prompt_embeds``; ftfy/HTML clean-up is left out: only whitespace is collapsed);
5. sampling: ``UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=8)``
   (:func:`a2_scheduler`), 50 steps, classifier-free guidance on the text only (scale 5; the unconditional
   pass keeps the image tokens and the condition latents);
6. decoding and dropping the reference slots: the first frames, which hold the references, are cut. By default
   exactly the decoded frames of the latent frames that carry references (9 for three references with the
   repeat); the official ``infer.py`` cuts 12 for three references: pass ``drop_frames=12`` to match it.

The transformer's cross-attention gets :class:`~.attention.A2AttnProcessor` with the real image-token count, so
the text need not be 512 tokens long.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError, NonFiniteError, ShapeError
from .attention import set_image_token_count
from .conditioning import (
    MAX_REFERENCES,
    crop_resize,
    crop_resize_pad,
    image_tokens,
    latent_frames_with_references,
    model_input,
    prepare_condition,
    unnormalize_latents,
)

__all__ = ["A2Output", "SkyReelsA2Pipeline", "a2_scheduler"]

NEGATIVE_PROMPT = ("Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, overall gray, "
                   "worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly drawn hands, poorly drawn "
                   "faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy background, three legs, many people in "
                   "the background, walking backwards")
"""The negative prompt of the official ``infer.py``."""


def a2_scheduler(flow_shift: float = 8.0):
    """The official sampler: ``UniPCMultistepScheduler`` in flow mode with shift 8 (``infer.py``)."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=flow_shift)


@dataclass
class A2Output:
    """``frames``: (B, T, H, W, 3) in [0, 1] for ``output_type="np"``, (B, T, 3, H, W) for ``"pt"``, latents for ``"latent"``."""

    frames: Any
    dropped_frames: int


def _pipeline_base():
    from diffusers import DiffusionPipeline

    return DiffusionPipeline


class SkyReelsA2Pipeline(_pipeline_base()):
    model_cpu_offload_seq = "text_encoder->image_encoder->transformer->vae"

    def __init__(self, transformer: Any, vae: Any, image_encoder: Any, image_processor: Any, text_encoder: Any, tokenizer: Any, scheduler: Any):
        super().__init__()
        self.register_modules(transformer=transformer, vae=vae, image_encoder=image_encoder, image_processor=image_processor,
                              text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
        self.vae_scale_factor_temporal = 2 ** sum(vae.temperal_downsample)
        self.vae_scale_factor_spatial = 2 ** len(vae.temperal_downsample)
        from diffusers.video_processor import VideoProcessor

        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor_spatial)

    # -- inputs ---------------------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str | list[str], max_sequence_length: int = 512) -> torch.Tensor:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        prompts = [re.sub(r"\s+", " ", p).strip() for p in prompts]
        tok = self.tokenizer(prompts, padding="max_length", max_length=max_sequence_length, truncation=True,
                             add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        device = self._execution_device
        mask = tok.attention_mask.to(device)
        states = self.text_encoder(tok.input_ids.to(device), attention_mask=mask).last_hidden_state
        lengths = mask.gt(0).sum(dim=1)
        keep = (torch.arange(states.shape[1], device=device)[None, :] < lengths[:, None]).unsqueeze(-1)
        return states * keep  # the official trim-to-length then zero-pad, in one step

    def _references(self, references: Sequence[Any], height: int, width: int, clip_size: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if not 1 <= len(references) <= MAX_REFERENCES:
            raise ConfigError("references", f"{len(references)} images", "1, 2 or 3 images: character, object, background")
        device = self._execution_device
        clip_px, vae_px = [], []
        for i, ref in enumerate(references):
            arr = np.asarray(ref.convert("RGB") if hasattr(ref, "convert") else ref)
            if arr.dtype != np.uint8:
                if not np.isfinite(arr).all():
                    raise NonFiniteError(f"reference {i}", "NaN or inf pixels", fix="pass RGB images as uint8 or floats in [0, 1]")
                arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
            clip_img = crop_resize_pad(arr, clip_size, clip_size)
            clip_px.append(self.image_processor(images=clip_img, return_tensors="pt").pixel_values.to(device))
            vae_img = crop_resize_pad(arr, height, width) if i < 2 else crop_resize(arr, height, width)
            vae_px.append(self.video_processor.preprocess(vae_img, height=height, width=width).to(device))
        return clip_px, vae_px

    # -- sampling -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, references: Sequence[Any], prompt: str | list[str], negative_prompt: str | list[str] | None = "", *,
                 height: int = 480, width: int = 832, num_frames: int = 81, num_inference_steps: int = 50,
                 guidance_scale: float = 5.0, generator: torch.Generator | None = None, vae_repeat: bool = True,
                 max_sequence_length: int = 512, clip_size: int = 512, drop_frames: int | None = None,
                 output_type: str = "np", progress: bool = True) -> A2Output:
        if output_type not in ("np", "pt", "latent"):
            raise ConfigError("output_type", output_type, "'np', 'pt' or 'latent'")
        mult = 16 if self.vae_scale_factor_spatial >= 8 else 2 * self.vae_scale_factor_spatial
        if height % mult or width % mult:
            raise ConfigError("height x width", f"{height}x{width}", f"multiples of {mult} (VAE x{self.vae_scale_factor_spatial}, patch 2)")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        batch = len(prompts)
        cond_embeds = self.encode_prompt(prompts, max_sequence_length)
        do_cfg = guidance_scale > 1.0
        if do_cfg:
            neg = negative_prompt if negative_prompt is not None else ""
            negs = [neg] * batch if isinstance(neg, str) else list(neg)
            if len(negs) != batch:
                raise ConfigError("negative_prompt", f"{len(negs)} prompts", f"one string or {batch} prompts, like prompt")
            uncond_embeds = self.encode_prompt(negs, max_sequence_length)

        clip_px, vae_px = self._references(references, height, width, clip_size)
        dtype = self.transformer.dtype
        img_tokens = image_tokens(self.image_encoder, clip_px).repeat(batch, 1, 1).to(dtype)
        set_image_token_count(self.transformer, img_tokens.shape[1])
        t_lat = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        shape = (batch, self.vae.config.z_dim, t_lat, height // self.vae_scale_factor_spatial, width // self.vae_scale_factor_spatial)
        device = self._execution_device
        # the generator draws the noise first, then the posterior sample of the condition (official prepare_latents order)
        latents = torch.randn(shape, generator=generator, device=generator.device if generator is not None else device).to(device)
        condition = prepare_condition(self.vae, vae_px, num_frames, batch_size=batch, vae_repeat=vae_repeat, generator=generator)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        for t in self.progress_bar(self.scheduler.timesteps) if progress else self.scheduler.timesteps:
            x = model_input(latents, condition.to(latents.device)).to(dtype)
            ts = t.expand(batch)
            v = self.transformer(x, timestep=ts, encoder_hidden_states=cond_embeds.to(dtype), encoder_hidden_states_image=img_tokens,
                                 return_dict=False)[0]
            if do_cfg:
                u = self.transformer(x, timestep=ts, encoder_hidden_states=uncond_embeds.to(dtype), encoder_hidden_states_image=img_tokens,
                                     return_dict=False)[0]
                v = u + guidance_scale * (v - u)
            latents = self.scheduler.step(v.float(), t, latents, return_dict=False)[0]
        if not torch.isfinite(latents).all():
            raise NonFiniteError("sampled latents", "NaN or inf", fix="check the transformer's weights and the guidance scale")

        n_drop = drop_frames if drop_frames is not None else (
            1 + self.vae_scale_factor_temporal * (latent_frames_with_references(len(references), vae_repeat=vae_repeat,
                                                                                temporal=self.vae_scale_factor_temporal) - 1))
        if not 0 <= n_drop < num_frames:
            raise ConfigError("drop_frames", n_drop, f"0 <= drop_frames < num_frames={num_frames}")
        if output_type == "latent":
            return A2Output(latents, 0)
        z = unnormalize_latents(latents, self.vae).to(next(self.vae.parameters()).dtype)
        video = self.vae.decode(z, return_dict=False)[0]  # (B, 3, T, H, W) in about [-1, 1]
        video = ((video.float().clamp(-1, 1) + 1) / 2)[:, :, n_drop:]
        video = video.permute(0, 2, 1, 3, 4)  # (B, T, 3, H, W)
        if output_type == "np":
            video = video.permute(0, 1, 3, 4, 2).cpu().numpy()
        return A2Output(video, n_drop)

    @staticmethod
    def save_mp4(frames: Any, path: str | Path, fps: float = 15.0) -> Path:
        """Write one video, (T, H, W, 3) numpy in [0, 1] or (T, 3, H, W), as an mp4 (atomic; OpenCV)."""
        from ...data.av_io import write_video

        arr = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
        if arr.ndim != 4:
            raise ShapeError("frames", arr.shape, "(T, H, W, 3) or (T, 3, H, W) for one video")
        if arr.shape[-1] == 3 and arr.shape[1] != 3:
            arr = arr.transpose(0, 3, 1, 2)
        return write_video(path, arr, fps)
