"""torchrun worker for tests/torch/test_plateau.py::test_ddp_two_ranks_agree (gloo, CPU).

Each rank sees a different local validation loss; PlateauLR all-reduces it (mean) before
deciding, so both ranks must reduce at the same epochs. Both ranks pass the same journal path;
only rank 0 may write it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from lrdoctor.torch import PlateauLR


def main() -> None:
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = PlateauLR(opt, patience=1, factor=0.5, monitor="val_loss", journal=out / "journal.jsonl")
    gen = torch.Generator().manual_seed(100 + rank)
    lrs, local = [], []
    for epoch in range(30):
        opt.step()
        # rank 0's loss falls steadily, rank 1's is noisy and flat: alone they would decide differently
        value = 1.0 / (1 + epoch) if rank == 0 else float(1.0 + torch.rand(1, generator=gen))
        local.append(value)
        sched.step(value)
        lrs.append(opt.param_groups[0]["lr"])
    (out / f"rank{rank}.json").write_text(json.dumps({"lrs": lrs, "local": local,
                                                       "entries": len(sched.journal)}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
