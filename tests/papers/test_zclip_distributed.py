"""ZClip under torch.distributed on CPU (gloo, 2 processes started by torch.multiprocessing).

For DDP, FSDP1 (``FullyShardedDataParallel``) and FSDP2 (``fully_shard``): the norm ZClip sees is the
global one, every rank scales by the same factor and holds the same statistics, and a 2-rank run
equals a 1-rank run on the concatenated batch to float tolerance. A planted outlier batch makes
ZClip clip, so the scaling itself is compared, not only the statistics. The official package's
FSDP rule is the reference: the norm is sqrt(sum over ranks of the local squared shard norms).
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from reprolab.papers.zclip import ZClip

STEPS = 10
SPIKE_STEP = 7  # the targets of this step are scaled by 30: a gradient spike ZClip must clip
WARMUP = 4
BATCH = 8  # per rank; the 1-rank reference sees 2 x BATCH
# (wrapper, what step() is given); FSDP1 with an optimizer over use_orig_params views needs the group passed
CASES = [("ddp", "module"), ("ddp", "optimizer"), ("fsdp1", "module"), ("fsdp1", "optimizer_with_group"), ("fsdp2", "module"), ("fsdp2", "optimizer")]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(2 * BATCH, 6, generator=g)
    y = torch.randn(2 * BATCH, 1, generator=g) * (30.0 if step == SPIKE_STEP else 1.0)
    return x, y


def _train(model: torch.nn.Module, rank: int, world: int, zclip_target) -> dict:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    zclip = ZClip(warmup_steps=WARMUP, max_grad_norm=None)
    trace = {"grad_norm": [], "clipped_norm": [], "spike": [], "mean": [], "var": [], "local_norm": []}
    for step in range(STEPS):
        x, y = _batch(step)
        per = 2 * BATCH // world
        x, y = x[rank * per : (rank + 1) * per], y[rank * per : (rank + 1) * per]
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        local = [p.grad.to_local() if hasattr(p.grad, "to_local") else p.grad for p in model.parameters() if p.grad is not None]
        trace["local_norm"].append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in local]))) if local else 0.0)
        info = zclip.step(zclip_target(model, opt))
        opt.step()
        trace["grad_norm"].append(float(info.grad_norm))
        trace["clipped_norm"].append(float(info.clipped_norm))
        trace["spike"].append(bool(info.spike))
        trace["mean"].append(float("nan") if zclip.mean is None else zclip.mean)  # NaN while warming up
        trace["var"].append(float("nan") if zclip.var is None else zclip.var)
    return trace


def _full_params(model: torch.nn.Module, mode: str) -> list[torch.Tensor]:
    if mode == "fsdp1":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.summon_full_params(model):
            return [p.detach().clone() for p in model.parameters()]
    if mode == "fsdp2":
        return [p.full_tensor().detach().clone() for p in model.parameters()]
    module = model.module if hasattr(model, "module") else model
    return [p.detach().clone() for p in module.parameters()]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """Every case in one pair of processes (starting processes is the slow part)."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        results = {}
        for mode, target in CASES:
            model = _model()
            if mode == "ddp":
                model = torch.nn.parallel.DistributedDataParallel(model)
            elif mode == "fsdp1":
                from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

                model = FSDP(model, device_id=torch.device("cpu"), use_orig_params=target != "module")
            elif mode == "fsdp2":
                from torch.distributed.device_mesh import init_device_mesh
                from torch.distributed.fsdp import fully_shard

                mesh = init_device_mesh("cpu", (world,))
                for layer in model:
                    if isinstance(layer, torch.nn.Linear):
                        fully_shard(layer, mesh=mesh)
                fully_shard(model, mesh=mesh)
            if target == "module":
                trace = _train(model, rank, world, lambda m, o: m)
            elif target == "optimizer_with_group":
                trace = _train(model, rank, world, lambda m, o: _GroupArg(o, dist.group.WORLD))
            else:
                trace = _train(model, rank, world, lambda m, o: o)
            trace["params"] = _full_params(model, mode)
            results[f"{mode}-{target}"] = trace
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


class _GroupArg:
    """Marks 'call step(optimizer, process_group=group)' for _train (optimizer over sharded views)."""

    def __init__(self, opt, group):
        self.opt, self.group = opt, group


_orig_step = ZClip.step


def _step_with_group(self, parameters, **kw):
    if isinstance(parameters, _GroupArg):
        return _orig_step(self, parameters.opt, process_group=parameters.group)
    return _orig_step(self, parameters, **kw)


ZClip.step = _step_with_group  # only in this test module's processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("zclip_dist")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def reference() -> dict:
    model = _model()
    trace = _train(model, 0, 1, lambda m, o: m)
    trace["params"] = [p.detach().clone() for p in model.parameters()]
    return trace


def test_the_reference_run_clips_the_planted_spike(reference):
    assert reference["spike"][SPIKE_STEP] and sum(reference["spike"]) >= 1
    assert reference["clipped_norm"][SPIKE_STEP] < reference["grad_norm"][SPIKE_STEP] / 2


@pytest.mark.parametrize(("mode", "target"), CASES)
def test_two_ranks_equal_one_rank_on_the_concatenated_batch(mode, target, reference, ranks):
    ranks = [r[f"{mode}-{target}"] for r in ranks]
    for key in ("grad_norm", "clipped_norm", "mean", "var"):
        # every rank saw the same global norm, scaled by the same factor, holds the same statistics
        assert ranks[0][key] == pytest.approx(ranks[1][key], rel=1e-6, abs=1e-9, nan_ok=True), key
        assert ranks[0][key] == pytest.approx(reference[key], rel=1e-4, abs=1e-7, nan_ok=True), key
    assert ranks[0]["spike"] == ranks[1]["spike"] == reference["spike"]
    if mode.startswith("fsdp"):  # the control: a rank's own shard has a smaller norm than the global one
        assert all(a < g * 0.99 for a, g in zip(ranks[0]["local_norm"], ranks[0]["grad_norm"]))
    for rank in ranks:
        for p, q in zip(rank["params"], reference["params"]):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
