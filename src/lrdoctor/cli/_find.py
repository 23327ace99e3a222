"""``lrdoctor find``: run the LR range test on an example task or on your own model and data."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from lrdoctor.cli._common import CLIError, check_outputs, console, progress, write_json, writing

__all__ = ["register"]

EXAMPLES = """examples:
  lrdoctor find --example mnist1d-conv --optimizer adam --plot finder.png
  lrdoctor find --example charlm --lr-range 1e-5 1 --steps 150 --json finder.json
  lrdoctor find --example charlm --optimizer sgd --budget-steps 704
  lrdoctor find --example digits-mlp --optimizer adamw --auto --total-steps 2000 --json auto.json
  lrdoctor find --model mypkg.models:make_model --data mypkg.data:loaders --optimizer sgd

--model names a function returning an nn.Module; --data a function returning a train loader,
a (train, val) pair, or a dict with 'train' (and optionally 'val', 'loss_fn', 'step_fn').
Either may be 'path/to/file.py:function'.
"""

LOSSES = ("cross_entropy", "mse", "model")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "find",
        help="LR range test: a suggested learning rate, its interval and ready schedule specs",
        description="Ramp the learning rate up over a few hundred steps, read a learning rate "
                    "off the loss curve, and restore the model afterwards.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--example", metavar="NAME", help="an example task: digits-mlp, digits-cnn, "
                     "mnist1d-conv, charlm")
    src.add_argument("--model", metavar="MOD:FUNC", help="a function returning your nn.Module")
    p.add_argument("--data", metavar="MOD:FUNC", help="with --model: a function returning loaders")
    p.add_argument("--loss", choices=LOSSES, default="cross_entropy",
                   help="with --model: the loss (model = the model returns .loss); "
                        "default %(default)s")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="adam",
                   help="sgd = SGD with momentum 0.9; default %(default)s")
    p.add_argument("--lr-range", nargs=2, type=float, metavar=("START", "END"),
                   help="the ramp's first and last LR (default 1e-6 10)")
    p.add_argument("--steps", type=int, default=200,
                   help="ramp length in optimizer steps (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3,
                   help="runs on different batches (default %(default)s)")
    p.add_argument("--no-zoom", dest="zoom", action="store_false",
                   help="skip the zoomed second pass over the 2.5 decades around the first "
                        "pass's loss minimum (it adds half the steps again)")
    p.add_argument("--budget-steps", type=int, metavar="N",
                   help="the optimizer steps of the run the LR is for: adds the budget probe "
                        "(a quarter of N steps at the suggestion, then a short ramp), which "
                        "moves the suggestion closer to the loss minimum when that stays safe")
    p.add_argument("--auto", action="store_true",
                   help="answer 'what LR and schedule for N steps': a range test sized to 10%% "
                        "of the run (--steps/--repeats are ignored), then warm-up + the "
                        "decay the benchmark picked, for exactly --total-steps (docs/finder.md, "
                        "auto)")
    p.add_argument("--total-steps", type=int, metavar="N",
                   help="with --auto: the run's optimizer steps (default: the example's budget)")
    p.add_argument("--rule", default=None, help="suggestion rule: margin (default), steepest, edge, valley, minimum")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the example task (default %(default)s)")
    p.add_argument("--schedule-steps", type=int, metavar="N",
                   help="training length for the spec strings "
                        "(default: the example's budget, or 1000)")
    p.add_argument("--plot", metavar="PNG", help="write the range-test picture")
    p.add_argument("--json", metavar="JSON", help="write the result as JSON (- for standard output)")
    p.set_defaults(run=run)


def _load(ref: str, what: str) -> Any:
    """``pkg.mod:attr`` or ``path/file.py:attr`` -> the attribute."""
    if ":" not in ref:
        raise CLIError(f"{what} {ref!r}: expected 'module:function' or 'file.py:function'")
    mod_name, _, attr = ref.rpartition(":")
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise CLIError(f"{what} {ref!r}: the file {path} does not exist")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            if "" not in sys.path:
                sys.path.insert(0, "")
            module = importlib.import_module(mod_name)
    except ImportError as err:
        raise CLIError(f"{what} {ref!r}: cannot import {mod_name!r} ({err})") from None
    if not hasattr(module, attr):
        raise CLIError(f"{what} {ref!r}: {mod_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def _user_problem(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if not args.data:
        raise CLIError("--model needs --data MOD:FUNC (a function returning the loaders)")
    factory = _load(args.model, "--model")
    model = factory() if callable(factory) else factory
    if not isinstance(model, torch.nn.Module):
        raise CLIError(f"--model {args.model}: expected an nn.Module, got {type(model).__name__}")
    data = _load(args.data, "--data")
    data = data() if callable(data) else data
    out: dict[str, Any] = {"model": model, "val": None, "step_fn": None}
    if isinstance(data, Mapping):
        if "train" not in data:
            raise CLIError(f"--data {args.data}: the dict needs a 'train' loader")
        out.update(train=data["train"], val=data.get("val"), step_fn=data.get("step_fn"),
                   loss_fn=data.get("loss_fn"))
    elif isinstance(data, tuple) and len(data) in (1, 2):
        out.update(train=data[0], val=data[1] if len(data) == 2 else None)
    else:
        out["train"] = data
    if out.get("loss_fn") is None:
        out["loss_fn"] = {"cross_entropy": torch.nn.CrossEntropyLoss(),
                          "mse": torch.nn.MSELoss(), "model": None}[args.loss]
    out["schedule_steps"] = None
    try:
        out["steps_per_epoch"] = len(out["train"])
    except TypeError:
        out["steps_per_epoch"] = None
    return out


def run(args: argparse.Namespace) -> int:
    from lrdoctor._lazy import require

    require("torch", "torch")
    from lrdoctor.finder import DEFAULT_RULE, RULES

    rule = args.rule or DEFAULT_RULE
    if rule not in RULES:
        raise CLIError(f"--rule must be one of {', '.join(RULES)}, got {rule!r}")
    start, end = args.lr_range if args.lr_range else (1e-6, 10.0)
    check_outputs(args, "plot", "json")
    if args.schedule_steps is not None and args.schedule_steps < 2:
        raise CLIError(f"--schedule-steps must be >= 2, got {args.schedule_steps}")
    if args.budget_steps is not None and args.budget_steps < 4:
        raise CLIError(f"--budget-steps must be >= 4 (the run's optimizer steps), "
                       f"got {args.budget_steps}")

    if args.total_steps is not None and not args.auto:
        raise CLIError("--total-steps goes with --auto (for the plain finder: --budget-steps)")
    if args.auto and args.budget_steps is not None:
        raise CLIError("--auto takes --total-steps, not --budget-steps")
    if args.total_steps is not None and args.total_steps < 20:
        raise CLIError(f"--total-steps must be >= 20 (the run's optimizer steps), "
                       f"got {args.total_steps}")
    if args.auto and args.total_steps is None and not args.example:
        raise CLIError("--auto needs --total-steps N (the optimizer steps of your run)")

    from lrdoctor import examples
    from lrdoctor.torch import auto_lr, find_lr

    if args.example:
        if args.data:
            raise CLIError("--data goes with --model, not with --example")
        task = examples.get(args.example, seed=args.seed)
        model = task.build_model()
        problem = {"model": model, "train": task.train_loader, "val": None, "step_fn": None,
                   "loss_fn": task.loss_fn, "schedule_steps": task.epochs * task.steps_per_epoch}
        label = f"example {args.example} (seed {args.seed})"
    else:
        problem = _user_problem(args)
        model = problem["model"]
        label = args.model
    optimizer = examples.make_optimizer(args.optimizer, model, start)
    auto = None
    with progress() as bar:
        job = bar.add_task(f"range test {start:g} -> {end:g}", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(job, completed=done, total=total)

        if args.auto:
            total_steps = args.total_steps or problem["schedule_steps"]
            auto = auto_lr(model, optimizer, problem["train"], problem["loss_fn"],
                           total_steps=total_steps, step_fn=problem["step_fn"], start_lr=start,
                           end_lr=end, rule=rule, zoom=args.zoom, progress=tick)
            result = auto.finder
            args.steps, args.repeats = result.settings["num_steps"], result.settings["repeats"]
        else:
            result = find_lr(model, optimizer, problem["train"], problem["loss_fn"],
                             step_fn=problem["step_fn"], start_lr=start, end_lr=end,
                             num_steps=args.steps, repeats=args.repeats, rule=rule,
                             zoom=args.zoom, budget_steps=args.budget_steps, progress=tick)
    steps = args.schedule_steps or args.budget_steps or args.total_steps or \
        problem["schedule_steps"] or 1000

    console.print(f"[bold]LR range test[/] on {label}, optimizer {args.optimizer}, "
                  f"{args.repeats} x {args.steps} steps over {start:g} .. {end:g}")
    if result.coarse is not None:
        zlo, zhi = result.settings["zoom"]
        console.print(f"zoomed: {args.repeats} x {result.settings['zoom_steps']} steps over "
                      f"{zlo:.3g} .. {zhi:.3g} (first pass alone: "
                      f"{result.coarse.summary()})", soft_wrap=True)
    if result.suggestion is None:
        console.print("[bold yellow]no suggestion[/]: " + " ".join(result.notes), soft_wrap=True)
        console.print(f"why: {result.reason}", soft_wrap=True)
    else:
        lo, hi = result.interval or (result.suggestion, result.suggestion)
        console.print(f"suggested lr: [bold green]{result.suggestion:.3g}[/]  "
                      f"interval {lo:.3g} .. {hi:.3g}  grade [bold]{result.grade}[/]  "
                      f"(rule {result.rule})")
        console.print(f"why: {result.reason}", soft_wrap=True)
        if auto is not None:
            console.print(f"run {auto.total_steps} steps with: [bold green]{auto.spec}[/]  "
                          f"(peak {auto.peak_lr:.3g} = suggestion x "
                          f"{auto.peak_lr / result.suggestion:.3g}; finder cost "
                          f"{100 * auto.cost:.1f}% of the run)", soft_wrap=True)
        table = Table(title="rules on the same curve")
        table.add_column("rule")
        table.add_column("lr", justify="right")
        moved = result.probe is not None and result.probe.moved
        for name, lr in result.picks.items():
            table.add_row(name + (" *" if name == result.rule and not moved else ""),
                          "-" if lr is None else f"{lr:.3g}")
        if moved:
            table.add_row(f"{result.rule} + budget probe *", f"{result.suggestion:.3g}")
        console.print(table)
        console.print(f"schedules for {steps} steps:")
        for kind, spec in result.specs(steps=steps).items():
            console.print(f"  {kind:<10} {spec}", soft_wrap=True)
        for note in result.notes:
            console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
        if args.budget_steps is None and auto is None:
            console.print("[dim]hint:[/] for a constant LR over a run of N optimizer steps, "
                          "--budget-steps N checks whether it can sit closer to the loss "
                          "minimum (a quarter of the run more; docs/finder.md, step 7)",
                          soft_wrap=True)
    if args.plot:
        with writing(args.plot) as target:
            result.plot(target)
        console.print(f"plot: {args.plot}")
    if args.json:
        data = result.to_dict() if auto is None else auto.to_dict()
        data["specs"] = result.specs(steps=steps)
        data["source"] = label
        data["optimizer"] = args.optimizer
        write_json(args.json, data)
        console.print(f"json: {args.json}")
    return 0
