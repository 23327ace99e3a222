"""Data-parallel training with lrdoctor on every rank: ``torchrun --nproc_per_node=2 examples/ddp_train.py``.

What it shows (CPU and gloo by default; ``--backend nccl`` on GPUs):

* ``find_lr`` under DDP: the losses are averaged over ranks and rank 0's suggestion is broadcast,
  so every rank starts from the same learning rate;
* ``PlateauLR(schedule="warmup(...) >> constant(lr)")``: the validation loss is averaged over
  ranks before each decision, so every rank reduces at the same epoch; rank 0 writes the journal;
* ``RankMonitor``: the mean loss over ranks goes to one Monitor log (rank 0); a NaN on any rank is
  a NaN in the mean, so every rank skips that step together; each rank's local loss and lr go to
  ``<out>/ranks/`` for the ``ranks-diverge`` check;
* at the end, rank 0 writes ``diagnosis.json`` and ``report.html``; every rank writes
  ``rank<r>.json`` (its lr per step, decisions, finder suggestion, skipped steps) so you can
  check that the ranks agree.

Options for experiments: ``--nan-rank R --nan-step K`` makes rank R's loss NaN at step K;
``--write all`` gives every rank its own Monitor log; ``--find-lr`` runs the finder first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="ddp-out", help="run directory (default: ddp-out)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64, help="per rank")
    p.add_argument("--lr", type=float, default=0.05, help="peak lr when --find-lr is not given")
    p.add_argument("--warmup", type=int, default=5, help="warm-up steps")
    p.add_argument("--patience", type=int, default=0)
    p.add_argument("--find-lr", action="store_true", help="pick the lr with the range test first")
    p.add_argument("--nan-rank", type=int, default=-1)
    p.add_argument("--nan-step", type=int, default=-1)
    p.add_argument("--write", choices=["rank0", "all"], default="rank0")
    p.add_argument("--backend", default="gloo")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from lrdoctor import examples
    from lrdoctor.integrations import RunFiles
    from lrdoctor.integrations.ranks import RankMonitor, all_reduce_mean
    from lrdoctor.torch import PlateauLR, find_lr

    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    out = Path(args.out)
    files = RunFiles(out)
    journal, _ = files.start(0, writer=rank == 0)   # rank 0 clears a previous run's files
    dist.barrier()

    task = examples.get("digits-mlp", seed=0)
    data = task.data
    train = TensorDataset(torch.as_tensor(data.x_train), torch.as_tensor(data.y_train))
    val = TensorDataset(torch.as_tensor(data.x_val), torch.as_tensor(data.y_val))
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler)
    val_loader = DataLoader(val, batch_size=256,
                            sampler=DistributedSampler(val, num_replicas=world, rank=rank,
                                                       shuffle=False))
    model = DDP(task.build_model(seed=0))
    loss_fn = task.loss_fn
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    suggestion = None
    peak = args.lr
    if args.find_lr:
        result = find_lr(model, opt, loader, loss_fn, num_steps=40, repeats=1,
                         start_lr=1e-4, end_lr=10.0)
        suggestion = float(result.suggestion)
        peak = suggestion

    plateau = PlateauLR(opt, mode="min", factor=0.5, patience=args.patience, monitor="val_loss",
                        schedule=f"warmup({args.warmup}) >> constant({peak!r})", journal=journal)
    monitor = RankMonitor(model.module, opt, files.log, write=args.write,
                          trace_dir=out / "ranks", every=10)
    lrs_used: list[float] = []
    skipped: list[int] = []
    step = 0
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        model.train()
        for x, y in loader:
            loss = loss_fn(model(x), y)
            if rank == args.nan_rank and step == args.nan_step:
                loss = loss * float("nan")            # a corrupt batch on one rank
            opt.zero_grad()
            loss.backward()                           # DDP averages the gradients
            mean = all_reduce_mean(float(loss.detach()))
            used = [float(g["lr"]) for g in opt.param_groups]
            if math.isfinite(mean):
                opt.step()                            # PlateauLR advances its schedule here
            else:
                skipped.append(step)                  # every rank sees the NaN mean: all skip
            monitor.step(loss=loss, mean=mean, lrs=used, inputs=x, targets=y)
            lrs_used.append(used[0])
            step += 1
        metrics = task.evaluate(model.module, val_loader)
        val_loss = all_reduce_mean(metrics["val_loss"])
        val_acc = all_reduce_mean(metrics["val_accuracy"])
        monitor.epoch(val_loss=val_loss, val_accuracy=val_acc)
        plateau.step(metrics["val_loss"])             # PlateauLR averages it over ranks itself
        if plateau.should_stop:
            break
    monitor.close()

    summary = {"rank": rank, "world_size": world, "lrs": lrs_used, "skipped_steps": skipped,
               "suggestion": suggestion, "decisions": plateau.journal.state(),
               "final_val_loss": val_loss}
    (out / f"rank{rank}.json").write_text(json.dumps(summary, indent=1, allow_nan=True) + "\n")
    dist.barrier()
    if rank == 0:
        diagnosis = files.finish(html=not args.no_report)
        worst = diagnosis.worst if diagnosis is not None else "none"
        print(f"rank 0: {step} steps, lr {lrs_used[-1]:.4g}, val_loss {val_loss:.4f}; "
              f"diagnosis ({worst}) in {files.diagnosis}")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
