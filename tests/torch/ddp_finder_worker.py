"""torchrun worker for tests/torch/test_finder.py::test_ddp_two_ranks_agree (gloo, CPU).

Each rank trains a DDP model on its own shard; find_lr all-reduces the losses, so both ranks
follow the same curve and end with rank 0's suggestion (the budget probe runs on both, in step,
and its report is rank 0's); the model is restored on both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lrdoctor.torch import find_lr


def main() -> None:
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(10 + rank)  # a different shard per rank
    x = torch.randn(512, 8, generator=g)
    y = (x[:, 0] > 0).long()
    loader = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 512, 16)]
    before = [p.detach().clone() for p in model.parameters()]
    res = find_lr(model, opt, loader, nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=10.0,
                  num_steps=40, repeats=2, budget_steps=40)
    restored = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    (out / f"rank{rank}.json").write_text(json.dumps({
        "suggestion": res.suggestion, "interval": res.interval, "losses": res.losses.tolist(),
        "probe": None if res.probe is None else res.probe.to_dict(), "restored": restored}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
