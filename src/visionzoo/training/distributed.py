"""Data-parallel training: one process per rank, gradients all-reduced by DistributedDataParallel.

The same `train()` runs on every rank under three launchers:
- `visionzoo train --processes N` (and `detect|segment|caption train`) spawns N local ranks (`launch`);
- `torchrun` (one or many machines) sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT;
- Ray Train's TorchTrainer sets the same variables and has already built the process group.
Each rank trains on a disjoint slice of every global batch (`batches.loader_batches`), training
figures are summed over ranks and rank 0 validates for all, so every rank logs the same figures
and takes the same early-stopping decision, and rank 0 alone writes the run folder (logs,
checkpoints, history, report): the run is the same format as a single-process one. gloo on CPU,
NCCL on CUDA.
"""
from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import socket
import sys
import threading
import time
import warnings
from typing import Any, Callable

import torch
from torch import nn

from ..cpus import usable_cpus
from ..errors import UsageError
from ..runtime import pick_device

_RANK: tuple[int, int] | None = None  # (rank, world size) while this process trains data-parallel


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks ((0, 1) outside data-parallel training)."""
    return _RANK or (0, 1)


def is_main() -> bool:
    return rank_and_world()[0] == 0


def _env_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """True inside a rank started by a launcher (ours, torchrun, Ray Train)."""
    import torch.distributed as dist

    return _env_world() > 1 or (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)


def join(wanted: int, device: str, log: Callable[[str], None], *, parallel: bool = True,
         why_not: str = "") -> int | None:
    """Join the launcher's process group (building it from the environment unless Ray Train did)
    and give this rank its share of the cores and its GPU. Returns the number of ranks that train,
    or None on a rank with nothing to do: a recipe that is not `parallel` (`why_not` says why)
    runs on rank 0 alone."""
    global _RANK
    import torch.distributed as dist

    _RANK = None  # a process may train more than once (a Ray Train loop)
    if not launched():
        if wanted > 1 and not parallel:
            log(f"{why_not}, so data parallelism buys nothing; training in one process")
            return 1
        return wanted
    ready = dist.is_initialized()
    world = dist.get_world_size() if ready else _env_world()
    rank = dist.get_rank() if ready else int(os.environ["RANK"])
    if not parallel:
        if rank == 0:
            log(f"{why_not}, so data parallelism buys nothing; rank 0 trains alone, the other {world - 1} ranks stop")
        return 1 if rank == 0 else None
    if wanted not in (1, world):
        raise UsageError(f"--processes {wanted} but the launcher started {world} ranks")
    dev = pick_device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if dev.type == "cuda" and not ready:  # Ray Train has already picked each worker's GPU
        if local_world > torch.cuda.device_count():
            raise UsageError(f"{local_world} ranks on this machine but only {torch.cuda.device_count()} GPUs")
        torch.cuda.set_device(local_rank)
    torch.set_num_threads(_cores_per_rank(local_world))
    if not ready:  # a group we build we also tear down; Ray Train's belongs to Ray
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world,
                                device_id=torch.device("cuda", local_rank) if dev.type == "cuda" else None)
        atexit.register(dist.destroy_process_group)
    _RANK = (rank, world)
    dist.barrier()  # every rank has read the run folder's state before rank 0 starts writing it
    return world


def _cores_per_rank(local_world: int) -> int:
    return max(1, usable_cpus() // local_world)


def cores_per_rank() -> int:
    """This process's share of the machine's cores (all of them outside data parallelism)."""
    if _RANK is None:
        return usable_cpus()
    return _cores_per_rank(int(os.environ.get("LOCAL_WORLD_SIZE", _RANK[1])))


def rank_workers(workers: int | None) -> int | None:
    """Decoding processes per rank: by default the cores are shared out between the local ranks."""
    if workers is not None or _RANK is None:
        return workers
    return min(4, _cores_per_rank(int(os.environ.get("LOCAL_WORLD_SIZE", _RANK[1]))))


def wrap(module: nn.Module, device: torch.device, *, sync_bn: bool, find_unused: bool = False) -> nn.Module:
    """DistributedDataParallel around `module` (whose trainable parameters are already chosen), or
    `module` itself outside data parallelism. sync_bn: BatchNorm statistics over the global batch
    as in one process (CUDA only: PyTorch's SyncBatchNorm has no CPU kernel, so CPU ranks
    normalise over their own slice of the batch). find_unused: some trainable parameters may get
    no gradient in a step (a detector's mask head on a batch without objects)."""
    if _RANK is None:
        return module
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn and device.type == "cuda":
        from timm.layers import convert_sync_batchnorm

        module = convert_sync_batchnorm(module)  # swaps layers in place, keeping the same parameters
    return DistributedDataParallel(module, device_ids=[device.index or torch.cuda.current_device()]
                                   if device.type == "cuda" else None, find_unused_parameters=find_unused)


def uneven(net: nn.Module):
    """A context in which ranks may run out of batches at different steps (a batch whose images all
    failed to decode is skipped on one rank only) without a collective waiting forever."""
    return net.join() if hasattr(net, "join") and _RANK is not None else contextlib.nullcontext()


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over all ranks (the values themselves outside data parallelism)."""
    if _RANK is None:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def mean_over_ranks(sums: dict[str, list[float]], device: torch.device) -> dict[str, float]:
    """{name: [sum, count]} of each rank -> {name: total sum / total count} over all ranks."""
    keys = sorted(sums)
    if _RANK is not None:
        import torch.distributed as dist

        seen: list[Any] = [None] * _RANK[1]
        dist.all_gather_object(seen, keys)
        keys = sorted({k for ks in seen for k in ks})
    flat = all_sum([v for k in keys for v in sums.get(k, [0.0, 0.0])], device)
    return {k: flat[2 * i] / max(flat[2 * i + 1], 1e-12) for i, k in enumerate(keys)}


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (say, computing and caching features) while the other ranks wait;
    then they run it too (and find the cache). Outside data parallelism, just the block."""
    import torch.distributed as dist

    if _RANK is not None and _RANK[0] != 0:
        dist.barrier()
    yield
    if _RANK is not None and _RANK[0] == 0:
        dist.barrier()


def from_rank0(fn: Callable[[], Any]) -> Any:
    """`fn()` computed on rank 0 alone and handed to every rank (`fn()` itself outside data parallelism)."""
    if _RANK is None:
        return fn()
    import torch.distributed as dist

    box = [fn() if _RANK[0] == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# --------------------------------------------------------------------------- the local launcher
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exit_with(parent: int) -> None:
    """A rank whose launcher was killed stops too, rather than training on alone into the run folder."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def _rank_main(rank: int, fn: Callable, world: int, port: int, messages: Any, args: tuple, kwargs: dict) -> None:
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    multiprocessing.set_start_method(None, force=True)  # decoding workers start as under torchrun, not respawned
    # Python 3.12+ warns at each DataLoader fork from a process with threads (gloo's), as under torchrun
    warnings.filterwarnings("ignore", r".*use of fork\(\) may lead to deadlocks", DeprecationWarning)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    log = (lambda msg: messages.put(("log", msg))) if rank == 0 else None
    try:
        result = fn(*args, log=log, **kwargs)
    except UsageError as e:
        messages.put(("usage", str(e)))
        raise SystemExit(2) from None
    if rank == 0:
        messages.put(("result", result))
    _end_rank()


def _end_rank() -> None:
    """A finished rank exits at once, skipping interpreter teardown: its share of the run is saved
    (and rank 0's result sent), while C++ destructors at exit (gloo's threads among them) have
    turned a finished rank into a SIGABRT now and then. No barrier first: rank 0 may still be
    evaluating alone for longer than a collective's timeout."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def launch(fn: Callable[..., Any], world: int, *args: Any, log: Callable[[str], None] | None = print,
           **kwargs: Any) -> Any:
    """Run `fn(*args, log=..., **kwargs)` in `world` new local processes, as ranks 0..N-1 of a
    torchrun-style environment; return rank 0's result. Rank 0's log lines come back to `log`.
    When a rank fails, the others are stopped and the error says which rank and why; a
    UsageError raised in a rank is raised here as it was."""
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    messages = mp.get_context("spawn").SimpleQueue()
    found: dict[str, Any] = {}

    def drain() -> None:
        while not messages.empty():
            kind, value = messages.get()
            if kind == "log":
                if log:
                    log(value)
            else:
                found[kind] = value

    procs = mp.start_processes(_rank_main, args=(fn, world, _free_port(), messages, args, kwargs),
                               nprocs=world, join=False, start_method="spawn")
    try:
        while not procs.join(timeout=0.2):
            drain()
    except ProcessException as e:  # join() has already stopped the other ranks
        drain()
        if "usage" in found:
            raise UsageError(found["usage"]) from None
        raise RuntimeError(f"rank {e.error_index} of {world} failed, so every rank was stopped: "
                           f"{e.msg.strip()}") from None
    finally:
        for p in procs.processes:
            if p.is_alive():
                p.terminate()
    drain()
    return found.get("result")
