"""The leave-one-family-out scoring (benchmarks/_lofo.py): predictions, macro-F1, look-alikes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _corpus as C
import _lofo as L


def _run(expected: str, accepted: tuple[str, ...] = (), family: str = "cancer-mlp",
         seed: int = 0) -> C.Run:
    return C.Run(expected, "v", expected, accepted, {"family": family, "seed": seed})


def _result(key: str, losses: list[float], lrs: list[float] | None = None) -> C.RunResult:
    lrs = lrs or [0.1] * len(losses)
    hist = [{"epoch": i, "loss": v, "accuracy": 0.5, "val_loss": v, "val_accuracy": 0.5,
             "lr": lr} for i, (v, lr) in enumerate(zip(losses, lrs, strict=True))]
    return C.RunResult(key=key, config={"family": "cancer-mlp"}, jsonl="", csv="", history=hist)


def test_the_first_class_code_is_the_prediction_and_accepted_codes_count_as_right() -> None:
    classes = {"healthy", "lr-too-high", "dead-relu"}
    run = _run("lr-too-high", ("diverging",))
    assert L.predict(("still-learning", "dead-relu", "lr-too-high"), run, classes) == "dead-relu"
    assert L.predict(("diverging",), run, classes | {"diverging"}) == "lr-too-high"
    assert L.predict((), run, classes) == "healthy"
    assert L.top1_right(("diverging", "dead-relu"), run)
    assert not L.top1_right(("dead-relu", "lr-too-high"), run)
    assert L.top1_right((), _run("healthy"))
    assert not L.top1_right(("overfitting",), _run("healthy"))


def test_macro_f1_matches_a_hand_count() -> None:
    pairs = [("a", "a"), ("a", "b"), ("b", "b"), ("b", "b"), ("c", "a")]
    # a: tp 1, fp 1, fn 1 -> 0.5; b: tp 2, fp 1, fn 0 -> 0.8; c: 0
    assert L.macro_f1(pairs) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert L.macro_f1([("a", "a")]) == 1.0


def test_classes_with_identical_epoch_columns_form_a_look_alike_group() -> None:
    pairs = []
    for seed in (0, 1):
        pairs += [(_run("dead-relu", seed=seed), _result(f"d{seed}", [0.69, 0.69, 0.69])),
                  (_run("bad-initialization", seed=seed), _result(f"b{seed}", [0.69, 0.69, 0.691])),
                  (_run("healthy", seed=seed), _result(f"h{seed}", [0.69, 0.3, 0.1])),
                  (_run("plateau-monitor-mismatch", seed=seed),
                   _result(f"p{seed}", [0.69, 0.3, 0.1], [0.1, 0.05, 0.025]))]
    groups, evidence = L.lookalike_groups(pairs)
    assert groups["dead-relu"] == groups["bad-initialization"] == "bad-initialization|dead-relu"
    assert groups["healthy"] == "healthy"  # the LR column tells the plateau run apart
    assert groups["plateau-monitor-mismatch"] == "plateau-monitor-mismatch"
    assert ("bad-initialization", "dead-relu", 2, 2) in evidence


def test_the_group_score_counts_a_run_whose_expected_code_the_finding_names_as_a_candidate() -> None:
    classes = {"healthy", "dead-relu", "over-regularization", "lr-too-high", "bad-initialization"}
    codes = ("still-learning", "dead-relu")
    cands = (("still-learning",), ("dead-relu", "over-regularization", "lr-too-high"))
    assert L.predicting_candidates(codes, cands, classes) == cands[1]
    assert L.predicting_candidates((), (), classes) == ()
    rows = []
    for exp in ("over-regularization", "bad-initialization", "healthy"):
        run = _run(exp)
        rows.append({"run": run, "expected": exp, "pred": L.predict(codes, run, classes),
                     "top1": False, "codes": codes,
                     "cands": L.predicting_candidates(codes, cands, classes)})
    # named as a candidate: right for the group; not named: the plain (wrong) prediction
    assert [L.group_pred(r) for r in rows[:2]] == ["over-regularization", "dead-relu"]
    # a healthy run with a finding stays a false alarm whatever the finding names
    rows[2]["cands"] = ("healthy", "dead-relu")
    assert L.group_pred(rows[2]) == "dead-relu"
    s = L.score(rows)
    assert s["macro_f1"] == 0.0 and s["false_alarms"] == 1
    assert s["group_f1"] == pytest.approx(L.macro_f1([("over-regularization", "over-regularization"),
                                                      ("bad-initialization", "dead-relu"),
                                                      ("healthy", "dead-relu")]))
