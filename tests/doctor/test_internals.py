"""Rules on the live Monitor's measurements (doctor/_internals.py).

The trained runs are a digits MLP 64-256-128-64-10 (not a corpus family, not the P3 tuning model
64-128-64-10), seed 31, one torch thread, 4 epochs with Adam: about a second each.
"""

from __future__ import annotations

import numpy as np
import pytest

from lrdoctor.doctor import diagnose
from lrdoctor.logs import Event, Series, TrainingLog, load

SEED = 31


def _train(tmp, tag, *, weight_scale=1.0, epochs=4, zero_biases=False, batch=None,
           train_noise=0.0, tanh=False):
    torch = pytest.importorskip("torch")
    from lrdoctor import examples
    from lrdoctor.torch import Monitor

    torch.set_num_threads(1)
    task = examples.get("digits-mlp", seed=SEED, hidden=(256, 128, 64))
    torch.manual_seed(SEED)
    model = task.build_model(SEED)
    if tanh:                                             # the same MLP with tanh units
        model = torch.nn.Sequential(*[torch.nn.Tanh() if isinstance(m, torch.nn.ReLU) else m
                                      for m in model])
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(weight_scale)
                if zero_biases:
                    m.bias.zero_()
    opt = torch.optim.Adam(model.parameters(), lr=task.reference_lrs["adam"])
    xt = torch.as_tensor(task.data.x_train, dtype=torch.float32)
    yt = torch.as_tensor(task.data.y_train)
    xv = torch.as_tensor(task.data.x_val, dtype=torch.float32)
    yv = torch.as_tensor(task.data.y_val)
    gen = torch.Generator().manual_seed(SEED)
    path = tmp / f"{tag}.jsonl"
    with Monitor(model, opt, path, loss_fn=task.loss_fn) as mon:
        for _ in range(epochs):
            model.train()
            for idx in torch.randperm(len(yt), generator=gen).split(batch or task.batch_size):
                xb = xt[idx] + train_noise * torch.randn(len(idx), xt.shape[1], generator=gen)
                loss = task.loss_fn(model(xb), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.step(loss=float(loss.detach()), inputs=xb, targets=yt[idx])
            model.eval()
            with torch.no_grad():
                vo = model(xv)
                mon.epoch(val_loss=float(task.loss_fn(vo, yv)),
                          val_accuracy=float((vo.argmax(1) == yv).float().mean()))
    return load(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("internals")
    return {"tiny": _train(tmp, "tiny", weight_scale=1e-3), "default": _train(tmp, "default"),
            "zeros": _train(tmp, "zeros", weight_scale=0.0, zero_biases=True, epochs=2),
            "full": _train(tmp, "full", batch=100_000, epochs=30),
            "noised": _train(tmp, "noised", train_noise=2.0),
            "tanh-large": _train(tmp, "tanh-large", tanh=True, weight_scale=4.0, epochs=2),
            "tanh": _train(tmp, "tanh", tanh=True, epochs=2),
            "large": _train(tmp, "large", weight_scale=4.0, epochs=2)}


def test_a_shrunk_init_is_named_by_its_effect_vanishing_gradients(runs):
    d = diagnose(runs["tiny"])
    assert d.problems and d.problems[0].code == "vanishing-gradients", d.codes
    first = d.problems[0]
    assert first.data["ratio"] < 1e-2 and "init check" in first.evidence
    by = {f.code: f for f in d.findings}
    init = by["bad-initialization"]                      # still said, as what it shows as
    assert init.severity == "info" and init.explained_by == "vanishing-gradients"
    assert init.evidence.startswith("shown as vanishing-gradients")
    assert "bad weight initialization" not in first.evidence  # not listed as "also explains"


def test_the_same_model_at_its_default_init_has_no_fading_gradient(runs):
    d = diagnose(runs["default"])
    assert "vanishing-gradients" not in d.codes and "bad-initialization" not in d.codes, d.codes


def test_weights_scaled_up_are_exploding_gradients_from_the_first_step(runs):
    d = diagnose(runs["large"])
    f = {x.code: x for x in d.findings}["exploding-gradients"]
    assert f.severity == "warning" and f.data["growth"] > 1.4 and f.data["grad_fall"] > 3
    assert "per layer" in f.evidence
    assert "exploding-gradients" not in diagnose(runs["default"]).codes


def _growth_log(stds: list[float], grad_start: float) -> TrainingLog:
    """act_std at the first step per activation layer, and a gradient norm that starts at
    grad_start and settles at 1."""
    steps = np.arange(400)
    grad = np.where(steps < 20, grad_start, 1.0)
    series = {"train/loss": Series(steps, np.linspace(2.3, 0.5, 400)),
              "grad_norm": Series(steps, grad)}
    for i, s in enumerate(stds):
        series[f"act_std/r{i}"] = Series(np.array([0, 200]), np.array([s, s]))
    return TrainingLog(series, meta={"activations": [f"r{i}" for i in range(len(stds))]},
                       format="lrdoctor-jsonl")


def test_forward_growth_needs_both_growing_activations_and_a_falling_gradient():
    assert "exploding-gradients" in diagnose(_growth_log([1.0, 1.7, 2.9], 10.0)).codes
    # a fan-in-scaled (Kaiming) net keeps the std: no growth, whatever the gradient does
    assert "exploding-gradients" not in diagnose(_growth_log([1.0, 1.1, 1.15], 10.0)).codes
    # growing activations whose gradient never was larger than later: not an explosion
    assert "exploding-gradients" not in diagnose(_growth_log([1.0, 1.7, 2.9], 1.5)).codes
    # one activation layer cannot show a growth
    assert "exploding-gradients" not in diagnose(_growth_log([3.0], 10.0)).codes


def _layers_log(first: list[float], last: list[float], events=()) -> TrainingLog:
    steps = np.arange(0, 600, 100)
    loss = np.linspace(2.3, 1.0, 600)
    return TrainingLog({"train/loss": Series(np.arange(600), loss),
                        "grad_norm/a": Series(steps, np.array(first)),
                        "grad_norm/b": Series(steps, np.array([1.0] * 6)),
                        "grad_norm/c": Series(steps, np.array(last))},
                       meta={"layers": ["a", "b", "c"]}, events=list(events),
                       format="lrdoctor-jsonl")


def test_a_signal_that_fades_only_at_the_start_is_vanishing():
    log = _layers_log([1e-6, 0.3, 0.5, 0.5, 0.5, 0.5], [0.5] * 6)   # median ratio ~1
    f = {x.code: x for x in diagnose(log).findings}["vanishing-gradients"]
    assert f.severity == "warning" and f.data["ratio"] == pytest.approx(2e-6)
    assert f.data["ratio_end"] == pytest.approx(1.0)


def test_no_gradient_at_all_is_not_a_fading_one():
    """Exactly 0 in the first layer is dead units or zero weights (their rules' job)."""
    log = _layers_log([0.0, 0.3, 0.5, 0.5, 0.5, 0.5], [0.5] * 6)
    assert "vanishing-gradients" not in diagnose(log).codes


def test_zero_or_huge_weights_stay_a_bad_initialization():
    for gain in (0.0, 12.0):
        ev = Event("bad-initialization", f"weight scale off: a.weight={gain:g}", 0,
                   {"gains": {"a.weight": gain, "c.weight": gain}})
        log = _layers_log([1e-6, 0.3, 0.5, 0.5, 0.5, 0.5], [0.5] * 6, [ev])
        d = diagnose(log)
        assert d.problems[0].code == "bad-initialization", (gain, d.codes)
        assert {f.code: f for f in d.findings}["vanishing-gradients"].explained_by == (
            "bad-initialization")


def test_all_zero_weights_are_a_bad_init_not_a_squashed_output(runs):
    """Zero weights and biases make every output 0, which the Monitor's output check reads as
    "squashed into [0, 1]"; a constant shows no squashing, so the init is named."""
    log = runs["zeros"]
    assert any(e.code == "loss-activation-mismatch" for e in log.events)   # what it saw
    d = diagnose(log)
    assert d.problems[0].code == "bad-initialization", d.codes
    assert "loss-activation-mismatch" not in d.codes
    assert any(c == "loss-activation-mismatch" and "constant" in why for c, why in d.not_checked)


def test_a_real_squash_or_a_softmax_of_equal_logits_is_still_a_mismatch():
    for lo, hi in ((0.42, 0.58), (0.1, 0.1)):                  # spread; 1/10 everywhere
        ev = Event("loss-activation-mismatch", "model outputs are squashed", 0,
                   {"min": lo, "max": hi, "n_outputs": 10})
        log = _layers_log([0.5] * 6, [0.5] * 6, [ev])
        assert diagnose(log).problems[0].code == "loss-activation-mismatch", (lo, hi)


def _inputs_log(mean: float, std: float, absmax: float) -> TrainingLog:
    steps = np.arange(0, 20)
    return TrainingLog({"train/loss": Series(np.arange(200), np.linspace(2.3, 0.5, 200)),
                        "input/mean": Series(steps, np.full(20, mean)),
                        "input/std": Series(steps, np.full(20, std)),
                        "input/absmax": Series(steps, np.full(20, absmax))},
                       format="lrdoctor-jsonl")


def test_a_standardized_input_with_one_far_feature_value_is_normalized():
    """Whole-dataset batches of standardized digits hold a near-constant pixel at 33 std."""
    assert "unnormalized-input" not in diagnose(_inputs_log(0.0, 0.98, 33.0)).codes
    for mean, std, absmax in ((0.3, 4.0, 900.0), (2.0, 1.0, 40.0), (60.0, 200.0, 2000.0)):
        assert "unnormalized-input" in diagnose(_inputs_log(mean, std, absmax)).codes, (mean, std)


def test_one_step_per_epoch_while_still_improving_is_a_batch_size_problem(runs):
    d = diagnose(runs["full"])                           # 30 epochs = 30 Adam steps
    assert d.problems and d.problems[0].code == "batch-size", d.codes
    f = d.problems[0]
    assert f.data["steps_total"] == 30 and "one optimizer step" in f.evidence
    assert "batch-size" not in [x.code for x in diagnose(runs["default"]).problems]


def _epoch_steps_log(val: np.ndarray) -> TrainingLog:
    n = len(val)
    steps = np.arange(n)
    loss = 2.0 * np.exp(-steps / (2.0 * n)) + 0.1          # still falling at the end
    return TrainingLog({"train/loss": Series(steps, loss, steps.astype(float)),
                        "val/loss": Series(steps, val, steps.astype(float))},
                       format="lrdoctor-jsonl")


def test_one_step_per_epoch_is_no_problem_once_validation_stopped_improving():
    n = 40
    falling = 2.0 * np.exp(-np.arange(n) / 60.0) + 0.2
    assert "batch-size" in [f.code for f in diagnose(_epoch_steps_log(falling)).problems]
    turned = falling.copy()
    turned[n // 2:] = falling[n // 2] + np.linspace(0, 0.3, n - n // 2)   # overfits: rises
    assert "batch-size" not in [f.code for f in diagnose(_epoch_steps_log(turned)).problems]


def test_fractional_epochs_are_no_sign_of_one_step_per_epoch():
    """Hugging Face logs ``epoch`` = step / steps per epoch, a new value at every step: a run
    of minibatches, still improving, must not read as one batch per epoch."""
    n = 400
    steps = np.arange(n)
    loss = 2.0 * np.exp(-steps / (2.0 * n)) + 0.1
    val = 2.0 * np.exp(-steps / 120.0) + 0.2
    frac = steps / 100.0                                   # 100 steps per epoch
    log = TrainingLog({"train/loss": Series(steps, loss, frac),
                       "val/loss": Series(steps, val, frac)}, format="hf-trainer-state")
    assert "batch-size" not in [f.code for f in diagnose(log).problems]


def _noised_log(std: float, val_over_train: float) -> TrainingLog:
    steps = np.arange(0, 300, 15)
    ev = np.arange(50, 301, 50)
    train = 1.0 + np.exp(-ev / 100.0)
    return TrainingLog({"train/loss": Series(np.arange(300), 1.0 + np.exp(-np.arange(300) / 100)),
                        "train/loss_epoch": Series(ev, train),
                        "val/loss": Series(ev, train * val_over_train),
                        "input/mean": Series(steps, np.full(len(steps), 0.01)),
                        "input/std": Series(steps, np.full(len(steps), std)),
                        "input/absmax": Series(steps, np.full(len(steps), 4.0 * std))},
                       format="lrdoctor-jsonl")


def test_standardized_then_noised_training_inputs_are_a_data_problem():
    d = diagnose(_noised_log(2.2, 0.97))                  # sqrt(1 + 2^2): noise of std 2
    assert d.problems and d.problems[0].code == "data-problem", d.codes
    assert d.problems[0].data["input_std"] == pytest.approx(2.2)


def test_a_real_run_with_noise_added_to_its_training_batches_only(runs):
    d = diagnose(runs["noised"])
    assert d.problems and d.problems[0].code == "data-problem", d.codes
    assert "data-problem" not in diagnose(runs["default"]).codes


def test_no_noise_signature_or_a_training_split_that_is_the_easier_one_is_no_data_problem():
    for std, ratio in ((1.0, 0.97), (2.2, 1.6)):
        assert "data-problem" not in diagnose(_noised_log(std, ratio)).codes, (std, ratio)


def test_tanh_units_that_start_saturated_are_named(runs):
    d = diagnose(runs["tanh-large"])
    assert "saturated-activations" in [f.code for f in d.problems], d.codes
    f = {x.code: x for x in d.findings}["saturated-activations"]
    assert f.data["share_first"] > 0.01 and "first measurement" in f.evidence
    assert "saturated-activations" not in diagnose(runs["tanh"]).codes


def test_saturation_that_grows_during_training_only_is_not_the_init():
    steps = np.arange(0, 600, 100)
    base = {"train/loss": Series(np.arange(600), np.linspace(2.3, 0.4, 600))}
    late = TrainingLog({**base, "saturation/t": Series(steps, np.array([0.0, 0, 0.1, 0.2, 0.3,
                                                                           0.3]))},
                       format="lrdoctor-jsonl")
    assert "saturated-activations" not in diagnose(late).codes
    early = TrainingLog({**base, "saturation/t": Series(steps, np.full(6, 0.2))},
                        format="lrdoctor-jsonl")
    assert "saturated-activations" in [f.code for f in diagnose(early).problems]
