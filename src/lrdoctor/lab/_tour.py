"""The lab tour: the learning-rate story as a sequence of captioned pictures plus an index.html.

Each scene runs real optimizers, draws one figure and writes a caption whose numbers come
from the run itself, so the text can never drift from the picture.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrdoctor._output import write_file
from lrdoctor.lab._plots import figure
from lrdoctor.lab._run import OptimizerSetup, run
from lrdoctor.lab._surfaces import Noisy, Rosenbrock, Valley

__all__ = ["SCENES", "Scene", "SceneResult", "tour"]


@dataclass(frozen=True)
class SceneResult:
    """One written scene: its picture (file name), caption and headline numbers."""

    slug: str
    title: str
    caption: str
    image: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scene:
    """A chapter of the story: ``play(out_dir, image_name)`` runs, draws and returns the caption
    and numbers."""

    slug: str
    title: str
    play: Callable[[Path, str], tuple[str, dict[str, Any]]]


def _fmt_steps(n: int) -> str:
    return f"{n:,}"


# -- the scenes --------------------------------------------------------------------------------
VALLEY = Valley()


def _bounce(out: Path, image: str) -> tuple[str, dict[str, Any]]:
    n = 10_000
    t = run(VALLEY, OptimizerSetup("sgd", 1e-2), steps=n)
    tail_y = np.abs(t.points[-100:, 1])
    flips = int(np.sum(np.sign(t.points[-101:-1, 1]) != np.sign(t.points[-100:, 1])))
    figure(VALLEY, [t], path=out / image, path_steps=300, logx=True,
           panels=("trajectory", "loss", "grad_norm"),
           title="SGD, lr 1e-2: bouncing between the walls")
    numbers = {
        "steps": n,
        "steep_curvature": VALLEY.steep,
        "min_abs_y_last_100": float(tail_y.min()),
        "sign_flips_last_100": flips,
        "final_x": float(t.points[-1, 0]),
        "final_loss": float(t.losses[-1]),
        "final_grad_norm": float(t.grad_norms[-1]),
    }
    caption = (
        f"The valley's steep wall has curvature {VALLEY.steep:g}, so a step of lr 1e-2 multiplies "
        f"y by 1 − 0.01·{VALLEY.steep:g} = −1: every step lands on the opposite wall. After "
        f"{_fmt_steps(n)} steps x has reached {abs(numbers['final_x']):.0e} but |y| is still "
        f"{numbers['min_abs_y_last_100']:.3f} and changed sign {flips} times in the last 100 "
        f"steps. The loss is stuck at {numbers['final_loss']:.0f} while the gradient norm stays at "
        f"{numbers['final_grad_norm']:.0f}: a flat loss with a large gradient means the steps are "
        "too big, not that training has converged. (Curvature above 2/lr diverges; below it, "
        "the bounce dies away.)"
    )
    return caption, numbers


def _crawl(out: Path, image: str) -> tuple[str, dict[str, Any]]:
    n = 100_000
    slow = run(VALLEY, OptimizerSetup("sgd", 1e-7), steps=n)
    ok = run(VALLEY, OptimizerSetup("sgd", 5e-3), steps=n // 100)
    d = slow.distances
    figure(VALLEY, [slow, ok], path=out / image, logx=True, panels=("trajectory", "loss"),
           title="SGD, lr 1e-7: crawling")
    numbers = {
        "steps": n,
        "distance_ratio": float(d[-1] / d[0]),
        "closed_form_x_ratio": (1 - 1e-7 * VALLEY.shallow) ** n,
        "good_lr_steps": ok.steps,
        "good_lr_distance": ok.final_distance,
    }
    caption = (
        f"At lr 1e-7 nothing goes wrong — and nothing happens. After {_fmt_steps(n)} steps the "
        f"iterate is still {100 * numbers['distance_ratio']:.0f}% of its initial distance from "
        f"the minimum: the shallow direction shrinks by (1 − 1e-7)^{n:,} ≈ "
        f"{numbers['closed_form_x_ratio']:.3f}. For comparison, lr 5e-3 gets within "
        f"{numbers['good_lr_distance']:.0e} in {_fmt_steps(ok.steps)} steps. A loss that falls "
        "in a straight, slow line on a log-step axis is the signature of a learning rate that is "
        "far too small."
    )
    return caption, numbers


def _noise_floor(out: Path, image: str) -> tuple[str, dict[str, Any]]:
    n = 3_000
    surface = Noisy(Valley(), noise=2.0, seed=0)
    const = run(surface, OptimizerSetup("sgd", 5e-3), steps=n)
    decay = run(surface, OptimizerSetup("sgd", 5e-3, schedule=f"cosine(5e-3, end=0, steps={n})"),
                steps=n)
    figure(surface, [const, decay], path=out / image, panels=("trajectory", "loss", "grad_norm"),
           title="Noisy gradients: the loss stops falling, the gradient norm keeps jumping")
    g = const.grad_norms[-500:]
    numbers = {
        "loss_gap_steps_1000_1500": float(np.mean(const.losses[1000:1500]) - surface.min_loss),
        "loss_gap_last_500": float(np.mean(const.losses[-500:]) - surface.min_loss),
        "grad_norm_last_500_mean": float(np.mean(g)),
        "grad_norm_last_500_std": float(np.std(g)),
        "decay_loss_gap_last_500": float(np.mean(decay.losses[-500:]) - surface.min_loss),
    }
    caption = (
        "SGD at lr 5e-3 on the valley with gradient noise σ = 2 per coordinate, as minibatches "
        "give. After about a thousand steps the loss stops falling (mean "
        f"{numbers['loss_gap_steps_1000_1500']:.4f} over steps 1,000–1,500, "
        f"{numbers['loss_gap_last_500']:.4f} over the last 500) while the gradient norm keeps "
        f"jumping around {numbers['grad_norm_last_500_mean']:.1f} ± "
        f"{numbers['grad_norm_last_500_std']:.1f}: the iterate rattles around the minimum at a "
        "distance set by lr × noise. A large, jumpy gradient under a flat loss is the noise "
        "floor, not progress still to come; decaying the same lr to 0 (cosine) takes the loss "
        f"down to {numbers['decay_loss_gap_last_500']:.4f}."
    )
    return caption, numbers


def _adagrad(out: Path, image: str) -> tuple[str, dict[str, Any]]:
    n = 5_000
    surface = Rosenbrock()
    ada = run(surface, OptimizerSetup("adagrad", 0.1), steps=n)
    rms = run(surface, OptimizerSetup("rmsprop", 1e-3), steps=n)
    eff = ada.effective_lr
    monotone = bool(np.all(np.diff(eff, axis=0) <= 1e-15))
    figure(surface, [ada, rms], path=out / image, panels=("trajectory", "effective_lr"),
           title="Adagrad: every parameter gets its own rate — which only shrinks")
    numbers = {
        "adagrad_effective_lr_monotone_decreasing": monotone,
        "adagrad_effective_lr_start": eff[0].tolist(),
        "adagrad_effective_lr_end": eff[-1].tolist(),
        "adagrad_final_distance": ada.final_distance,
        "rmsprop_final_distance": rms.final_distance,
    }
    caption = (
        "Adagrad divides each parameter's lr by the root of the sum of all its squared gradients "
        "so far. Steep parameters get small steps and flat ones large steps — but the sum only "
        f"grows, so the step size can only shrink: here from {eff[0, 0]:.1e} to {eff[-1, 0]:.1e} "
        "for x. After the steep descent into the crescent the rate is spent, and Adagrad "
        f"creeps along the curved floor (distance {ada.final_distance:.2f} after "
        f"{_fmt_steps(n)} steps)."
    )
    return caption, numbers


def _rmsprop(out: Path, image: str) -> tuple[str, dict[str, Any]]:
    n = 5_000
    ada = run(VALLEY, OptimizerSetup("adagrad", 0.05), steps=n)
    rms = run(VALLEY, OptimizerSetup("rmsprop", 1e-3), steps=n)
    e = rms.effective_lr[:, 0]
    low = int(np.argmin(e[:500]))
    figure(VALLEY, [ada, rms], path=out / image, panels=("trajectory", "loss", "effective_lr"),
           title="RMSprop: recent gradients dominate, so a rate can recover")
    numbers = {
        "rmsprop_effective_lr_x_min": float(e[low]),
        "rmsprop_effective_lr_x_end": float(e[-1]),
        "rmsprop_recovery_factor": float(e[-1] / e[low]),
        "adagrad_effective_lr_x_end": float(ada.effective_lr[-1, 0]),
        "adagrad_final_distance": ada.final_distance,
        "rmsprop_final_distance": rms.final_distance,
    }
    caption = (
        "RMSprop keeps a moving average of squared gradients instead of their sum, so old "
        "gradients are forgotten. When the steep part is behind it, the gradients shrink and "
        f"the step size climbs back: x's rate rises {numbers['rmsprop_recovery_factor']:.0f}× "
        f"from its low. Adagrad at lr 0.05 never recovers and is still "
        f"{ada.final_distance:.2f} away after {_fmt_steps(n)} steps; RMSprop ends "
        f"{rms.final_distance:.0e} away (it hovers within about lr of the minimum)."
    )
    return caption, numbers


BURST_START = (-4.0, 0.02)


def _burst(out: Path, image: str) -> tuple[str, dict[str, Any]]:
    n = 400
    raw = run(VALLEY, OptimizerSetup("adam", 0.3), steps=n, start=BURST_START)
    warm = run(VALLEY, OptimizerSetup("adam", 0.3, schedule="warmup(100)"), steps=n,
               start=BURST_START)
    peak_raw = float(raw.losses[:50].max())
    peak_warm = float(warm.losses[:50].max())
    figure(VALLEY, [raw, warm], path=out / image, panels=("trajectory", "loss"), path_steps=100,
           title="Adam without warm-up: the first steps burst")
    numbers = {
        "initial_loss": float(raw.losses[0]),
        "peak_loss_no_warmup": peak_raw,
        "peak_loss_warmup": peak_warm,
        "first_step_y_no_warmup": float(abs(raw.updates[0, 1])),
        "first_step_y_warmup": float(abs(warm.updates[0, 1])),
        "tenth_step_y_warmup": float(abs(warm.updates[9, 1])),
    }
    caption = (
        "Adam divides by √v̂, its running estimate of each gradient's size. At step 1 that "
        "estimate has seen a single gradient, so every parameter moves by exactly ±lr whatever "
        f"its gradient: y, already {BURST_START[1]} from the floor of the steep wall, is "
        f"thrown {numbers['first_step_y_no_warmup']:.2f} across it, and the loss jumps from "
        f"{numbers['initial_loss']:.1f} to {peak_raw:.1f}. A 100-step warm-up starts with tiny "
        "steps while v̂ fills up (the first step moves y by "
        f"{numbers['first_step_y_warmup']:.2g}, the tenth by "
        f"{numbers['tenth_step_y_warmup']:.2g}); its loss "
        f"never goes above {peak_warm:.1f}."
    )
    return caption, numbers


def _ends(out: Path, image: str) -> tuple[str, dict[str, Any]]:
    n = 3_000
    surface = Noisy(Valley(), noise=2.0, seed=0)
    lr = 0.3
    specs = {
        "constant": None,
        "warm-up": "warmup(100)",
        "decay": f"cosine({lr}, end=0, steps={n})",
        "warm-up + decay": f"warmup(100) >> cosine({lr}, end=0, steps={n - 100})",
    }
    runs = [run(surface, OptimizerSetup("adam", lr, schedule=s), steps=n, start=BURST_START)
            for s in specs.values()]
    figure(surface, runs, path=out / image, panels=("loss", "lr"), logx=True,
           title="Warm-up fixes the start, decay fixes the end")
    numbers = {}
    for name, t in zip(specs, runs):
        numbers[name] = {
            "peak_loss_first_50": float(t.losses[:50].max()),
            "final_loss_gap": float(np.mean(t.losses[-100:]) - surface.min_loss),
        }
    caption = (
        "Adam at lr 0.3 on the valley with noisy gradients (σ = 2), four schedules. Warm-up "
        f"removes the burst at the start (peak loss {numbers['constant']['peak_loss_first_50']:.0f}"
        f" → {numbers['warm-up']['peak_loss_first_50']:.0f}) but not the noise floor at the end; "
        "a decay removes the floor (final loss − min "
        f"{numbers['constant']['final_loss_gap']:.1e} → {numbers['decay']['final_loss_gap']:.1e}) "
        "but not the burst. They fix opposite ends of training, so use both: "
        f"{numbers['warm-up + decay']['peak_loss_first_50']:.0f} at the start and "
        f"{numbers['warm-up + decay']['final_loss_gap']:.1e} at the end."
    )
    return caption, numbers


SCENES: tuple[Scene, ...] = (
    Scene("sgd-bounce", "SGD at 1e-2 bounces", _bounce),
    Scene("sgd-crawl", "SGD at 1e-7 crawls", _crawl),
    Scene("noise-floor", "Noisy gradients: a flat loss, a jumping gradient", _noise_floor),
    Scene("adagrad-shrinks", "Adagrad's rates only shrink", _adagrad),
    Scene("rmsprop-recovers", "RMSprop's rates recover", _rmsprop),
    Scene("adam-burst", "Adam without warm-up bursts", _burst),
    Scene("warmup-and-decay", "Warm-up and decay fix opposite ends", _ends),
)


def tour(
    out_dir: str | Path,
    *,
    scenes: Sequence[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[SceneResult]:
    """Write every scene's PNG, ``tour.json`` and ``index.html`` into ``out_dir``.

    ``scenes`` picks scenes by slug; ``progress(done, total, title)`` is called per scene.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in SCENES if scenes is None or s.slug in scenes]
    if scenes is not None and len(chosen) != len(set(scenes)):
        known = ", ".join(s.slug for s in SCENES)
        from lrdoctor.errors import LRDoctorError

        raise LRDoctorError(f"unknown scene in {list(scenes)}; expected some of {known}")
    results = []
    for i, scene in enumerate(chosen):
        if progress is not None:
            progress(i, len(chosen), scene.title)
        image = f"{i + 1:02d}-{scene.slug}.png"
        caption, numbers = scene.play(out, image)
        results.append(SceneResult(scene.slug, scene.title, caption, image, numbers))
    if progress is not None:
        progress(len(chosen), len(chosen), "done")
    write_file(out / "tour.json", json.dumps(
        [{"slug": r.slug, "title": r.title, "caption": r.caption, "image": r.image,
          "numbers": r.numbers} for r in results], indent=2) + "\n")
    write_file(out / "index.html", _render_index(results))
    return results


_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lrdoctor lab: a tour of learning rates</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:62rem;margin:auto;
padding:1rem;line-height:1.5;color:#222}
figure{margin:2rem 0;border-top:1px solid #ddd;padding-top:1rem}
img{max-width:100%;height:auto}
figcaption{margin-top:.5rem}
</style></head><body>
<h1>A tour of learning rates</h1>
<p>Real <code>torch.optim</code> optimizers on two-parameter surfaces. Every number in the
captions is measured from the run in the picture.</p>
{% for s in scenes %}
<figure id="{{ s.slug }}">
<h2>{{ loop.index }}. {{ s.title }}</h2>
<img src="{{ s.image }}" alt="{{ s.title }}">
<figcaption>{{ s.caption }}</figcaption>
</figure>
{% endfor %}
</body></html>
"""


def _render_index(results: Sequence[SceneResult]) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True)
    return env.from_string(_INDEX).render(scenes=results)
