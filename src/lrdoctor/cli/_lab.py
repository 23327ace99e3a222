"""``lrdoctor lab``: run real optimizers on a two-parameter surface, or take the tour."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from lrdoctor.cli._common import CLIError, check_outputs, console, progress, write_json, writing

__all__ = ["register"]

EXAMPLES = """examples:
  lrdoctor lab valley --optimizer sgd:1e-2 --optimizer sgd:1e-7 --steps 10000 --out valley.png
  lrdoctor lab valley --optimizer "adam:0.3" --optimizer "adam:0.3:warmup(100)" --steps 400 --start=-4,0.02 --out burst.png
  lrdoctor lab rosenbrock --optimizer adagrad:0.1 --optimizer rmsprop:1e-3 --steps 5000 --out crescent.png --gif crescent.gif
  lrdoctor lab noisy-valley --optimizer "adam:0.3:cosine(0.3, end=0, steps=3000)" --steps 3000 --out noisy.png --json noisy.json
  lrdoctor lab --tour --out lab-tour

optimizers: sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw (torch.optim, default settings;
momentum/nesterov use momentum=0.9). NAME:LR runs a constant LR; NAME:LR:SPEC runs any schedule
spec, and a lone warm-up such as warmup(100) ramps to LR.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from lrdoctor.lab._surfaces import SURFACES

    p = sub.add_parser(
        "lab",
        help="watch optimizers on two-parameter error surfaces (or --tour for the whole story)",
        description=(
            "Run real torch.optim optimizers on a two-parameter surface under any lrdoctor "
            "schedule and draw the paths, the loss, the gradient norm and the per-parameter "
            "step size."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("surface", nargs="?", choices=list(SURFACES), metavar="SURFACE",
                   help=f"one of: {', '.join(SURFACES)}")
    p.add_argument("--optimizer", "-o", action="append", default=[], metavar="NAME:LR[:SPEC]",
                   help="an optimizer to run (repeat to compare)")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    p.add_argument("--start", metavar="X,Y",
                   help="starting point (default: the surface's); write --start=-4,0.02 when X < 0")
    p.add_argument("--noise", type=float, help="gradient noise σ (wraps the surface)")
    p.add_argument("--seed", type=int, default=0, help="seed of the gradient noise")
    p.add_argument("--out", metavar="FILE", help="picture (PNG/SVG/PDF); with --tour a folder")
    p.add_argument("--json", metavar="OUT", help="write the runs' numbers as JSON (- for standard output)")
    p.add_argument("--gif", metavar="FILE", help="also write an animation (needs Pillow)")
    p.add_argument("--logx", action="store_true", help="log-scale the step axis")
    p.add_argument("--tour", action="store_true",
                   help="write the learning-rate story as captioned pictures and an index.html")
    p.set_defaults(run=run)


def _parse_start(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise CLIError(f"--start {text!r}: expected two numbers X,Y such as --start=-4,0.5") from None
    return x, y


def run(args: argparse.Namespace) -> int:
    if args.tour:
        return _tour(args)
    if args.surface is None:
        raise CLIError("name a SURFACE (e.g. valley) or pass --tour; see 'lrdoctor lab --help'")
    if not args.optimizer:
        raise CLIError("give at least one --optimizer NAME:LR[:SPEC], e.g. --optimizer sgd:1e-2")
    if args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {args.steps}")
    check_outputs(args, "out", "json", "gif")
    if not (args.out or args.json or args.gif):
        raise CLIError("nothing to write: give --out FILE (a picture), --json OUT or --gif FILE")

    from lrdoctor.lab import _run as lab_run
    from lrdoctor.lab import get_surface, parse_optimizer

    surface = get_surface(args.surface, noise=args.noise, seed=args.seed)
    start = _parse_start(args.start)
    setups = [parse_optimizer(text) for text in args.optimizer]
    runs = []
    with progress() as bar:
        for setup in setups:
            task = bar.add_task(setup.label, total=args.steps)
            runs.append(lab_run.run(
                surface, setup, steps=args.steps, start=start,
                progress=lambda done, total, task=task: bar.update(task, completed=done),
            ))

    table = Table(title=f"{surface.label}, {args.steps:,} steps")
    for col in ("optimizer", "final loss", "distance to min", "of initial", "end (x, y)"):
        table.add_column(col, justify="left" if col == "optimizer" else "right")
    for t in runs:
        s = t.summary()
        ratio = "—" if s["distance_ratio"] is None else f"{100 * s['distance_ratio']:.3g}%"
        end = f"({s['end'][0]:.3g}, {s['end'][1]:.3g})"
        if s["diverged"]:
            k = t.meta["completed_steps"]
            table.add_row(t.label, "—", "—", "—", f"diverged at step {k}")
        else:
            table.add_row(t.label, f"{s['final_loss']:.4g}", f"{s['final_distance']:.3g}", ratio,
                          end)
    console.print(table)

    if args.out:
        from lrdoctor.lab._plots import figure

        with writing(args.out) as target:
            figure(surface, runs, path=target, logx=args.logx)
        console.print(f"picture: {args.out}")
    if args.gif:
        from lrdoctor.lab._plots import animate

        with writing(args.gif) as target:
            animate(surface, runs, target)
        console.print(f"animation: {args.gif}")
    if args.json:
        every = max(1, args.steps // 5000)
        write_json(args.json, {
            "surface": surface.name,
            "steps": args.steps,
            "runs": [t.to_dict(every=every) for t in runs],
        })
        console.print(f"json: {args.json}")
    return 0


def _tour(args: argparse.Namespace) -> int:
    from lrdoctor.lab._tour import SCENES, tour

    out = Path(args.out or "lab-tour")
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: with --tour this is a folder, and a file of that name exists")
    check_outputs(args, "json")
    with progress() as bar:
        task = bar.add_task("lab tour", total=len(SCENES))

        def step(done: int, total: int, title: str) -> None:
            bar.update(task, completed=done, description=title)

        results = tour(out, progress=step)
    for i, r in enumerate(results, 1):
        console.print(f"[bold]{i}. {r.title}[/] — {out / r.image}")
    if args.json:
        write_json(args.json, {"scenes": [
            {"slug": r.slug, "title": r.title, "caption": r.caption, "image": r.image,
             "numbers": r.numbers} for r in results]})
    console.print(f"tour: {out / 'index.html'}")
    return 0
