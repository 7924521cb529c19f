"""The Lightning and HF Trainer callbacks under DDP on CPU (gloo, 2 processes): every rank's ZClip
holds the same statistics, equal to a 1-process run on the concatenated batch. Slow (each framework
starts its own processes): run with `make test-slow`."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch

pytestmark = pytest.mark.slow

STEPS = 8
ROWS = 2 * 4 * STEPS  # 2 ranks x 4 rows x STEPS steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, 4, generator=g)
    y = torch.randn(ROWS, 1, generator=g)
    y[4 * 8 * 2 // 2 : 4 * 8 * 2 // 2 + 8] *= 40  # an outlier batch (step 4 of 8 rows): ZClip must clip it
    return x, y


# -- Lightning ------------------------------------------------------------------------------
L = pytest.importorskip("lightning")
from reprolab.papers.zclip import ZClipLightningCallback  # noqa: E402


class Tiny(L.LightningModule):
    def __init__(self, out: str, devices: int, batch: int):
        super().__init__()
        self.out, self.devices, self.batch = out, devices, batch
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def training_step(self, b, _):
        return torch.nn.functional.mse_loss(self.net(b[0]), b[1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def train_dataloader(self):
        # rank r reads rows r, r + 2, ...: its 4-row batch k and the other rank's make the 8-row batch k
        data = torch.utils.data.TensorDataset(*_data())
        sampler = torch.utils.data.DistributedSampler(data, num_replicas=self.trainer.world_size, rank=self.global_rank, shuffle=False)
        return torch.utils.data.DataLoader(data, batch_size=self.batch, sampler=sampler)

    def on_train_end(self):
        cb = next(c for c in self.trainer.callbacks if isinstance(c, ZClipLightningCallback))
        params = [p.detach().flatten().tolist() for p in self.parameters()]
        with open(f"{self.out}/lightning-{self.devices}-{self.global_rank}.json", "w") as f:
            json.dump({"state": cb.zclips[0].state_dict(), "params": params, "spikes": cb.spikes}, f)


class Counting(ZClipLightningCallback):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.spikes = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        super().on_before_optimizer_step(trainer, pl_module, optimizer)
        self.spikes += bool(self.last_step.spike)


def _lightning_fit(out: str, devices: int, batch: int) -> None:
    trainer = L.Trainer(
        max_epochs=1, callbacks=[Counting(warmup_steps=3, max_grad_norm=None)], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto", use_distributed_sampler=False, default_root_dir=out,
    )
    trainer.fit(Tiny(out, devices, batch))


def test_lightning_callback_under_ddp_equals_one_process(tmp_path):
    pytest.importorskip("lightning")
    # DDP averages the two 4-row halves' gradients: the 8-row batch's gradient of the 1-process run.
    _lightning_fit(str(tmp_path), 2, 4)
    _lightning_fit(str(tmp_path), 1, 8)
    r0, r1, one = (json.loads((tmp_path / f"lightning-{d}-{r}.json").read_text()) for d, r in ((2, 0), (2, 1), (1, 0)))
    assert r0["state"]["steps"] == r1["state"]["steps"] == one["state"]["steps"] == STEPS
    assert r0["state"]["mean"] == pytest.approx(r1["state"]["mean"], rel=1e-9)
    assert r0["state"]["mean"] == pytest.approx(one["state"]["mean"], rel=1e-5)
    assert r0["state"]["var"] == pytest.approx(one["state"]["var"], rel=1e-4)
    assert r0["spikes"] >= 1 and r0["spikes"] == one["spikes"]
    for a, b in zip(r0["params"], one["params"]):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)


# -- Hugging Face Trainer --------------------------------------------------------------------
def _hf_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    _hf_train(out, world, 4, rank)


def _hf_train(out: str, world: int, batch: int, rank: int = 0) -> None:
    import transformers

    from reprolab.papers.zclip import ZClipTrainerCallback

    class Reg(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

        def forward(self, x, labels=None):
            pred = self.net(x)
            return {"loss": torch.nn.functional.mse_loss(pred, labels), "logits": pred}

    x, y = _data()
    data = [{"x": a, "labels": b} for a, b in zip(x, y)]
    args = transformers.TrainingArguments(
        output_dir=out, per_device_train_batch_size=batch, max_steps=STEPS, max_grad_norm=0.0, learning_rate=0.05, optim="sgd",
        lr_scheduler_type="constant", report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True,
        seed=0, dataloader_drop_last=True, ddp_backend="gloo" if world > 1 else None,
    )
    cb = ZClipTrainerCallback(warmup_steps=3, max_grad_norm=None)
    trainer = transformers.Trainer(model=Reg(), args=args, train_dataset=data, callbacks=[cb])
    trainer.train()
    params = [p.detach().flatten().tolist() for p in trainer.model.parameters()]
    with open(f"{out}/hf-{world}-{rank}.json", "w") as f:
        json.dump({"state": cb.zclip.state_dict(), "params": params}, f)


def test_hf_trainer_callback_under_ddp_ranks_agree(tmp_path):
    """Every rank's ZClip holds the same statistics (the Trainer's sampler shuffles, so the batches
    differ from a 1-process run; what must hold is that the ranks agree and ZClip ran every step)."""
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    import torch.multiprocessing as mp

    mp.spawn(_hf_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"hf-2-{r}.json").read_text()) for r in (0, 1))
    assert r0["state"]["steps"] == r1["state"]["steps"] == STEPS
    assert r0["state"]["mean"] == pytest.approx(r1["state"]["mean"], rel=1e-9)
    assert r0["state"]["var"] == pytest.approx(r1["state"]["var"], rel=1e-9)
    for a, b in zip(r0["params"], r1["params"]):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-8)
