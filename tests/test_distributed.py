"""Training on several processes (torch.distributed, DDP on gloo): two CPU processes against one.

Most groups here are two forked copies of this test process that call the engine with torchrun's environment
(RANK, WORLD_SIZE, MASTER_ADDR, ...): a group of two costs about a second instead of two fresh interpreters. The
launcher itself (`zoo train --nproc 2`, elastic restarts, bad input) runs as the user runs it, in a subprocess.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from zoo_core.checkpoint import load_checkpoint
from zoo_core.distributed import Group
from zoo_core.engine import TrainOptions, train
from zoo_core.registry import registered_model
from zoo_core.testing import private_cache, torch_threads

# ae_mnist shrunk: 25 batches of 32 an epoch, so that 20 steps stop inside the first epoch.
AE = {"embedded_items": 800, "batch_size": 32, "epochs": 1}
# cyclegan_hair's smallest networks without random crops, flips or pool: one step is then a pure function of the batch.
CYCLEGAN = {"image_size": 32, "load_size": 32, "features": 4, "res_blocks": 1, "d_features": 4, "portraits": 24,
            "batch_size": 4, "epochs": 1, "flip": False, "pool_size": 0, "val_fraction": 0.1}
# Two processes against one, trained weights: at most this share of the distance trained apart (see
# assert_same_training). An Intel Xeon (AMX) measured at most 3e-5 (autoencoder, 20 steps) and 1.3e-4 (CycleGAN,
# one step); without the gradient-weighting hook the autoencoder is 3e-2 off.
SAME_TRAINING = 1e-2
# Two processes against one, first-step gradients: relative distance (L2, per parameter) at most this.
GRADIENT_AGREEMENT = 1e-3
WRITES = ("open", "os.rename", "os.replace", "os.mkdir", "os.remove", "os.unlink", "os.truncate")


@pytest.fixture(scope="module", autouse=True)
def one_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One torch thread and a private data cache, for this process and the groups it forks."""
    with torch_threads(1), private_cache(tmp_path_factory.mktemp("cache")) as cache:
        yield cache


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _member(rank: int, world: int, port: int, job: Callable[..., None], args: tuple[Any, ...]) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    job(rank, *args)


def run_group(job: Callable[..., None], *args: Any, world: int = 2) -> None:
    """``job(rank, *args)`` in ``world`` forked processes that torch.distributed sees as one group."""
    torch.multiprocessing.start_processes(_member, args=(world, _free_port(), job, args), nprocs=world,
                                          start_method="fork", join=True)


def _options(model: str, out: Path, overrides: dict[str, Any], max_steps: int | None, resume: bool) -> TrainOptions:
    if resume:
        return TrainOptions(resume=out, device="cpu", progress=False, max_steps=max_steps)
    return TrainOptions(preset="quick", overrides=dict(overrides), device="cpu", out=out, progress=False, seed=5,
                        max_steps=max_steps)


def train_job(rank: int, model: str, out: Path, overrides: dict[str, Any], max_steps: int | None = None,
              resume: bool = False, writes_report: Path | None = None) -> None:
    """One member of a training group; with ``writes_report``, ranks other than 0 record every write under ``out``."""
    seen: list[str] = []
    if writes_report is not None and rank != 0:
        watched = str(out.resolve())

        def audit(event: str, args: tuple[Any, ...]) -> None:
            if event not in WRITES or not args or not isinstance(args[0], (str, os.PathLike)):
                return
            if event == "open":  # (path, mode, flags): builtin open gives a mode, os.open only flags
                mode, flags = args[1], args[2]
                writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
                    flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
                if not writing:
                    return
            if str(Path(os.fspath(args[0])).resolve()).startswith(watched):
                seen.append(f"{event} {os.fspath(args[0])}")

        sys.addaudithook(audit)
    train(registered_model(model), _options(model, out, overrides, max_steps, resume))
    if writes_report is not None and rank != 0:
        writes_report.write_text(json.dumps(seen))


def train_here(model: str, out: Path, overrides: dict[str, Any], max_steps: int | None = None,
               resume: bool = False) -> Path:
    return train(registered_model(model), _options(model, out, overrides, max_steps, resume))


def networks_of(run: Path) -> dict[str, torch.Tensor]:
    tensors = load_checkpoint(run / "checkpoints" / "last.safetensors").tensors
    return {key: value for key, value in tensors.items() if key.startswith("net/")}


def initial_networks(model: str, overrides: dict[str, Any], seed: int = 5) -> dict[str, torch.Tensor]:
    """The weights a run of ``model`` starts from, keyed as in its checkpoints (the engine seeds them alike)."""
    from zoo_core.config import resolve_config
    from zoo_core.models import build_networks, build_recipe

    registered = registered_model(model)
    recipe = build_recipe(registered, resolve_config(registered.spec, "quick", overrides))
    return {f"net/{name}/{key}": value.detach().clone()
            for name, network in build_networks(recipe, seed, torch.device("cpu")).items()
            for key, value in network.state_dict().items()}


def assert_same_training(start: dict[str, torch.Tensor], one: dict[str, torch.Tensor],
                         other: dict[str, torch.Tensor], share: float) -> None:
    """``other`` trained as ``one`` did from ``start``, up to the rounding of a different reduction order.

    Measured against the distance trained, not the weights' size: per tensor, max|other - one| may be at most
    ``share`` of max|one - start|. Rounding differences of float32 reductions (relative 2**-24 per addition, at
    most a few thousand terms per sum here: ~1e-4 of a step in the worst case) are what two processes add; a
    wrong split, a lost shard or a wrong weighting of a rank changes the steps themselves.
    """
    assert set(one) == set(other) == set(start)
    trained = 0
    for key, value in one.items():
        if not value.is_floating_point():
            continue
        distance = float((value - start[key]).abs().max())
        if distance == 0.0:  # a tensor training never moved (a buffer, a bias without gradient) must not move
            assert torch.equal(value, other[key]), key
            continue
        trained += 1
        apart = float((value - other[key]).abs().max())
        assert apart <= share * distance, f"{key}: {apart:.3g} apart after training {distance:.3g}"
    assert trained, "nothing trained: the comparison says nothing"


def biases_before_instance_norm(model: str, overrides: dict[str, Any]) -> set[str]:
    """Checkpoint keys of the biases of layers an InstanceNorm follows directly (their gradient is zero)."""
    from zoo_core.config import resolve_config
    from zoo_core.models import build_networks, build_recipe

    registered = registered_model(model)
    recipe = build_recipe(registered, resolve_config(registered.spec, "quick", overrides))
    keys = set()
    for name, network in build_networks(recipe, 5, torch.device("cpu")).items():
        for prefix, module in network.named_modules():
            if not isinstance(module, torch.nn.Sequential):
                continue
            children = list(module.named_children())
            for (layer, before), (_, after) in itertools.pairwise(children):
                if isinstance(after, torch.nn.InstanceNorm2d) and getattr(before, "bias", None) is not None:
                    keys.add(f"net/{name}/{prefix + '.' if prefix else ''}{layer}.bias")
    return keys


def step_of(run: Path) -> int:
    return load_checkpoint(run / "checkpoints" / "last.safetensors").meta["position"]["global_step"]


def layout(run: Path) -> list[str]:
    return sorted(str(path.relative_to(run)) for path in run.rglob("*"))


# -- the engine under a group of two ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ae_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ae_mnist for 20 steps: one process; two processes; and 10 + 10 steps resumed at the same and the other size."""
    root = tmp_path_factory.mktemp("ae")
    runs = {name: root / name for name in ("one", "two", "two_then_two", "two_then_one", "one_then_two")}
    train_here("ae_mnist", runs["one"], AE, max_steps=20)
    run_group(train_job, "ae_mnist", runs["two"], AE, 20, False, root / "rank1-writes.json")
    run_group(train_job, "ae_mnist", runs["two_then_two"], AE, 10)
    shutil.copytree(runs["two_then_two"], runs["two_then_one"])
    run_group(train_job, "ae_mnist", runs["two_then_two"], AE, 20, True)
    train_here("ae_mnist", runs["two_then_one"], AE, max_steps=20, resume=True)
    train_here("ae_mnist", runs["one_then_two"], AE, max_steps=10)
    run_group(train_job, "ae_mnist", runs["one_then_two"], AE, 20, True)
    return runs


def test_two_processes_with_half_batches_match_one_process(ae_runs: dict[str, Path]) -> None:
    assert step_of(ae_runs["two"]) == step_of(ae_runs["one"]) == 20
    one, two = networks_of(ae_runs["one"]), networks_of(ae_runs["two"])
    assert_same_training(initial_networks("ae_mnist", AE), one, two, share=SAME_TRAINING)


def first_step_gradients_job(rank: int, model: str, out: Path, overrides: dict[str, Any], report: Path) -> None:
    """Train one step and write the gradients every optimizer steps on (after DDP's all-reduce), in order."""
    seen: dict[str, torch.Tensor] = {}

    def record(optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    seen[f"{len(seen)}"] = parameter.grad.detach().clone()

    # a global pre-hook: called at every optimizer's step, after backward and DDP's all-reduce, before any update
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: record(optimizer))
    try:
        train(registered_model(model), _options(model, out, overrides, 1, False))
    finally:
        handle.remove()
    if rank == 0:
        from safetensors.torch import save_file

        save_file(seen, str(report))


def test_the_summed_gradients_of_two_processes_are_one_process_gradients(tmp_path: Path) -> None:
    """The gradient each optimizer steps on, first step: two processes on half batches against one on the batch.

    Adam's update hardly changes when every gradient is scaled (it divides by their root mean square), so the
    trained weights above cannot see a gradient weighted x2 or x0.5; the gradients themselves can. The autoencoder's
    loss is a sum over the batch: DDP's default (the mean over processes) would halve every gradient here.
    """
    run_group(first_step_gradients_job, "ae_mnist", tmp_path / "one", AE, tmp_path / "one.safetensors", world=1)
    run_group(first_step_gradients_job, "ae_mnist", tmp_path / "two", AE, tmp_path / "two.safetensors")
    from safetensors.torch import load_file

    one, two = load_file(str(tmp_path / "one.safetensors")), load_file(str(tmp_path / "two.safetensors"))
    assert len(one) == len(two) == 8  # encoder and decoder: two linear layers each, weight and bias
    for key, expected in one.items():
        summed = two[key]
        norm = float(expected.norm())
        assert norm > 0, key
        # float32 gradients of the same batch summed in two orders differ by far less than 1e-3 (n * 2**-24 for
        # n <= 784 terms per dot product, ~5e-5); a rank's share weighted wrong is off by its whole size
        ratio = float(summed.norm()) / norm
        assert float((summed - expected).norm()) <= GRADIENT_AGREEMENT * norm, (
            f"parameter {key}: two processes' summed gradient is {ratio:.4g} x one process's")


def test_only_rank_0_writes(ae_runs: dict[str, Path]) -> None:
    writes = json.loads((ae_runs["two"].parent / "rank1-writes.json").read_text())
    assert writes == []
    assert (ae_runs["two"] / "checkpoints" / "last.safetensors").is_file()


def test_resume_with_the_same_world_size_is_exact(ae_runs: dict[str, Path]) -> None:
    straight, resumed = networks_of(ae_runs["two"]), networks_of(ae_runs["two_then_two"])
    assert step_of(ae_runs["two_then_two"]) == 20
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key


@pytest.mark.parametrize("run", ["two_then_one", "one_then_two"])
def test_resume_across_world_sizes_continues(ae_runs: dict[str, Path], run: str) -> None:
    assert step_of(ae_runs[run]) == 20
    assert_same_training(initial_networks("ae_mnist", AE), networks_of(ae_runs["one"]), networks_of(ae_runs[run]),
                         share=SAME_TRAINING)


def test_one_cyclegan_step_matches_one_process(tmp_path: Path) -> None:
    """Four networks, two optimizers, discriminators frozen during the generator step: one step, mean losses."""
    train_here("cyclegan_hair", tmp_path / "one", CYCLEGAN, max_steps=1)
    run_group(train_job, "cyclegan_hair", tmp_path / "two", CYCLEGAN, 1)
    one, two = networks_of(tmp_path / "one"), networks_of(tmp_path / "two")
    assert {key.split("/")[1] for key in one} == {"G_AB", "G_BA", "D_A", "D_B"}
    # A bias just before an InstanceNorm has a true gradient of zero; Adam's first step, lr * g / (|g| + eps), turns
    # the rounding noise there into steps of up to lr. Those biases are left out; every other tensor must agree.
    noise_only = biases_before_instance_norm("cyclegan_hair", CYCLEGAN)
    assert noise_only and len(noise_only) < len(one) / 2  # 20 of the 52 tensors, all biases
    start = initial_networks("cyclegan_hair", CYCLEGAN)
    assert_same_training({k: v for k, v in start.items() if k not in noise_only},
                         {k: v for k, v in one.items() if k not in noise_only},
                         {k: v for k, v in two.items() if k not in noise_only}, share=SAME_TRAINING)


def test_a_two_process_epoch_writes_the_same_run_directory(tmp_path: Path) -> None:
    small = {**AE, "embedded_items": 200}
    train_here("ae_mnist", tmp_path / "one", small)
    run_group(train_job, "ae_mnist", tmp_path / "two", small)
    assert layout(tmp_path / "two") == layout(tmp_path / "one")
    rows = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [row["step"] for row in expected] == [6]  # 180 of 200 train, batch 32
    # all-reduced training metrics: the same numbers as one process, up to the order of additions. The losses are
    # sums of non-negative terms (no cancellation): another order rounds them by at most ~log2(n) * 2**-24 ~ 1e-6
    # relative in torch's pairwise sums (n <= 25,088 per batch); the later steps' weights differ by the tiny share
    # above. An Intel Xeon (AMX) measured 3e-8 (train) and 7e-8 (held out).
    assert rows[0]["train"]["loss"] == pytest.approx(expected[0]["train"]["loss"], rel=1e-5)
    assert rows[0]["val"]["loss"] == pytest.approx(expected[0]["val"]["loss"], rel=1e-5)


# -- sharding --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("items", "batch", "world"), [(100, 32, 2), (101, 10, 3), (7, 4, 4)])
def test_ranks_see_disjoint_shards_covering_the_epoch(items: int, batch: int, world: int) -> None:
    order = torch.randperm(items, generator=torch.Generator().manual_seed(items))
    seen: list[list[int]] = [[] for _ in range(world)]
    for start in range(0, items, batch):
        global_batch = {"index": order[start:start + batch]}
        weights = []
        for rank in range(world):
            group = Group(rank=rank, world_size=world)
            shard, total = group.shard(global_batch, "mean")
            assert total == len(global_batch["index"])
            if group.weight.gradients > 0:
                seen[rank] += shard["index"].tolist()
            weights.append(group.weight.gradients)
        assert sum(weights) == pytest.approx(1.0)  # mean losses: the shares of one global batch
    flat = [index for part in seen for index in part]
    assert sorted(flat) == list(range(items))  # every item once: disjoint, and together the epoch


def test_a_rank_without_items_in_the_last_batch_computes_on_a_stand_in_weighted_zero() -> None:
    group = Group(rank=3, world_size=4)
    shard, total = group.shard({"x": torch.arange(3)}, "sum")
    assert total == 3 and len(shard["x"]) == 1
    assert group.weight.gradients == 0.0 and group.weight.metrics == 0.0


# -- the launcher, as users run it -----------------------------------------------------------------------------
def zoo(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "zoo_core", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_torchrun_starts_zoo_core_as_a_module(tmp_path: Path) -> None:
    """The documented entry point for launchers: torchrun ... -m zoo_core train ..."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "zoo_core", "train", "ae_mnist", "--epochs", "1", "--set", "embedded_items=200",
                           "--batch-size", "32", "--out", "run", "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines().count(f"run directory: {Path('run')}") == 1  # rank 0 alone says it
    assert json.loads((tmp_path / "run" / "config.json").read_text())["world_size"] == 2
    assert step_of(tmp_path / "run") == 6


def _rank_pid(launcher: int, rank: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def test_zoo_train_nproc_2_restarts_after_a_killed_worker_and_finishes(tmp_path: Path) -> None:
    args = ["train", "ae_mnist", "--nproc", "2", "--max-restarts", "1", "--save-every", "20", "--epochs", "2",
            "--set", "embedded_items=2400", "--batch-size", "16", "--out", "run", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen([sys.executable, "-m", "zoo_core", *args], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    deadline = time.monotonic() + 120
    while not last.exists() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = _rank_pid(launcher.pid, 1)
    assert victim is not None and launcher.poll() is None, "the run ended before a worker could be killed"
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = launcher.communicate(timeout=180)
    assert launcher.returncode == 0, stderr
    assert "restart 1 of the processes" in stderr
    # a normal run directory, written by rank 0 alone, as `zoo train --nproc 2` always leaves it
    assert f"run directory: {Path('run')}" in stdout.splitlines()
    assert layout(tmp_path / "run") == ["checkpoints", "checkpoints/best.safetensors", "checkpoints/last.safetensors",
                                        "config.json", "loss.png", "metrics.jsonl", "samples",
                                        "samples/epoch_001.png", "samples/epoch_002.png"]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["world_size"] == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    for checkpoint in (tmp_path / "run" / "checkpoints").glob("*.safetensors"):
        assert load_checkpoint(checkpoint).meta["position"]["global_step"] > 0
    assert step_of(tmp_path / "run") == 2 * (2160 // 16)


def test_a_killed_worker_without_restarts_stops_the_group_in_one_line(tmp_path: Path) -> None:
    args = ["train", "ae_mnist", "--nproc", "2", "--epochs", "3", "--set", "embedded_items=2400", "--batch-size",
            "16", "--out", "run", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen([sys.executable, "-m", "zoo_core", *args], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and launcher.poll() is None and time.monotonic() < deadline:
        victim = _rank_pid(launcher.pid, 1) if (tmp_path / "run" / "config.json").exists() else None
        time.sleep(0.05)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    assert lines[-1].startswith("zoo: training stopped: rank 1 failed (killed by SIGKILL)"), stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["--nproc", "0"], "0 is not in the range"),
    (["--nproc", "1000"], "1000 is not in the range 1<=x<=256"),
    (["--nproc", "2", "--device", "cuda"], "--nproc 2 with --device cuda needs 2 GPUs"),
    (["--nnodes", "2"], "needs --rdzv-endpoint"),
    (["--nnodes", "2", "--rdzv-endpoint", "192.0.2.1:29400", "--rdzv-timeout", "1"], "could not gather 2 machine"),
])
def test_bad_launch_options_fail_in_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    if "cuda" in args and torch.cuda.device_count() >= 2:
        pytest.skip("this machine has two GPUs")
    started = time.monotonic()
    done = zoo("train", "ae_mnist", "--out", "run", *args, cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert time.monotonic() - started < 45
