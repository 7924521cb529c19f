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


def _hf_trainer(tmp, cb, out, max_steps=8, **kw):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    cfg = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg)
    ids = torch.randint(0, 50, (32, 16), generator=torch.Generator().manual_seed(1))
    dataset = [{"input_ids": row, "labels": row} for row in ids]
    args = transformers.TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=4, max_steps=max_steps, max_grad_norm=0.0, learning_rate=3e-2,
        report_to=[], save_strategy="steps", save_steps=3, logging_strategy="no", use_cpu=True, disable_tqdm=True, seed=0, **kw,
    )
    return transformers.Trainer(model=model, args=args, train_dataset=dataset, callbacks=[cb])


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(pin_memory|deprecated|torch_dtype|checkpoint).*")
        return fn()


def test_hf_trainer_resume_continues_zclip_exactly(tmp_path):
    """Runs resumed from checkpoint-3 (warm-up of 2 steps is over) by path and by True end with the same
    ZClip statistics and weights as the uninterrupted run; without the saved state they would not."""
    import json
    import shutil

    from reprolab.papers.zclip import ZClipTrainerCallback

    full_cb = ZClipTrainerCallback(warmup_steps=2, max_grad_norm=None)
    full = _hf_trainer(tmp_path, full_cb, tmp_path / "full")
    _quiet(full.train)
    assert full_cb.zclip.steps == 8 and full_cb.zclip.initialized
    a = full_cb.zclip.state_dict()
    ckpt = tmp_path / "full" / "checkpoint-3"

    shutil.copytree(ckpt, tmp_path / "by_true" / "checkpoint-3")
    for name, resume in (("by_path", str(ckpt)), ("by_true", True)):
        cb = ZClipTrainerCallback(warmup_steps=2, max_grad_norm=None)
        trainer = _hf_trainer(tmp_path, cb, tmp_path / name)
        _quiet(lambda: trainer.train(resume_from_checkpoint=resume))  # noqa: B023
        assert cb.restored_from == "trainer_state.json", name
        b = cb.zclip.state_dict()
        assert b["steps"] == a["steps"] == 8, name
        assert b["mean"] == pytest.approx(a["mean"], rel=1e-6) and b["var"] == pytest.approx(a["var"], rel=1e-6), name
        for (n, p), q in zip(full.model.named_parameters(), trainer.model.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=f"{name}: {n}")

    # The control: the same resume with ZClip's saved state removed restarts ZClip's warm-up.
    bare = tmp_path / "bare" / "checkpoint-3"
    shutil.copytree(ckpt, bare)
    state_file = bare / "trainer_state.json"
    data = json.loads(state_file.read_text())
    data["stateful_callbacks"]["ZClipTrainerCallback"]["attributes"] = {}
    state_file.write_text(json.dumps(data))
    bare_cb = ZClipTrainerCallback(warmup_steps=2, max_grad_norm=None)
    _quiet(lambda: _hf_trainer(tmp_path, bare_cb, tmp_path / "bare_out").train(resume_from_checkpoint=str(bare)))
    assert bare_cb.restored_from is None
    assert bare_cb.zclip.steps == 5 and bare_cb.zclip.mean != pytest.approx(a["mean"], rel=1e-6)


def test_hf_trainer_callback_rejects_missing_model_and_optimizer():
    pytest.importorskip("transformers")
    from reprolab.errors import ConfigError
    from reprolab.papers.zclip import ZClipTrainerCallback

    with pytest.raises(ConfigError, match="optimizer or model"):
        ZClipTrainerCallback().on_pre_optimizer_step(None, None, None)
