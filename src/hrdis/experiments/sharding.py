"""Sharding a benchmark or sweep over processes started by torchrun: each rank runs every K-th cell
(``bench.run_cells``), rank 0 merges the rows."""

from __future__ import annotations


def dist_env() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; joins a gloo process group when world > 1."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
    return rank, world

def dist_done(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()

def dist_close(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
