"""ZClip inside Lightning and the Hugging Face Trainer, on tiny models: once per optimizer step."""

from __future__ import annotations

import warnings

import pytest
import torch


def test_lightning_callback_steps_once_per_optimizer_step(tmp_path):
    L = pytest.importorskip("lightning")
    from reprolab.papers.zclip import ZClipLightningCallback

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
            self.frozen = torch.nn.Linear(4, 4)  # parameters that never get a gradient
            self.frozen.requires_grad_(False)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.AdamW([{"params": self.net.parameters()}, {"params": self.frozen.parameters()}], lr=1e-2)

    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 4, generator=g), torch.randn(64, 1, generator=g))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    cb = ZClipLightningCallback(warmup_steps=5, max_grad_norm=None)
    trainer = L.Trainer(
        max_epochs=1, accumulate_grad_batches=2, callbacks=[cb], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu",
    )
    trainer.fit(Tiny(), loader)
    # 16 batches, accumulated in pairs: 8 optimizer steps, so 8 ZClip steps (not 16).
    assert cb.zclips[0].steps == 8
    assert cb.zclips[0].initialized
    state = cb.state_dict()
    cb2 = ZClipLightningCallback(warmup_steps=5, max_grad_norm=None)
    cb2.load_state_dict(state)
    assert cb2.zclips[0].mean == cb.zclips[0].mean


def test_hf_trainer_callback_steps_once_per_optimizer_step(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from reprolab.papers.zclip import ZClipTrainerCallback

    cfg = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg)
    ids = torch.randint(0, 50, (24, 16))
    dataset = [{"input_ids": row, "labels": row} for row in ids]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, gradient_accumulation_steps=2, num_train_epochs=1,
        max_grad_norm=0.0, learning_rate=1e-3, report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True,
        disable_tqdm=True,
    )
    cb = ZClipTrainerCallback(warmup_steps=2, max_grad_norm=None)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=dataset, callbacks=[cb])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # max_grad_norm=0: no warning about double clipping
        warnings.filterwarnings("ignore", message=".*(pin_memory|deprecated|torch_dtype).*")
        trainer.train()
    assert cb.zclip.steps == trainer.state.global_step == 3  # 6 batches / accumulation 2
    assert cb.zclip.initialized


def test_hf_trainer_callback_warns_about_fixed_clipping(tmp_path):
    transformers = pytest.importorskip("transformers")
    from reprolab.papers.zclip import ZClipTrainerCallback

    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_grad_norm=1.0, report_to=[], use_cpu=True)
    with pytest.warns(UserWarning, match="max_grad_norm=0"):
        ZClipTrainerCallback().on_train_begin(args, None, None)
