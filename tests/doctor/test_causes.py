"""Causes before symptoms: a symptom a present cause explains is shown as its consequence."""

from __future__ import annotations

from lrdoctor.doctor import CODES, Finding
from lrdoctor.doctor._causes import CONSEQUENCES, explains
from lrdoctor.doctor._finding import rank


def f(code: str, severity: str = "warning", score: float = 0.5) -> Finding:
    return Finding(code, CODES[code], severity, f"{code} evidence", "fix", (1.0,), score)


def test_the_table_names_only_known_codes_and_has_no_cycle():
    for cause, symptoms in CONSEQUENCES.items():
        assert cause in CODES and set(symptoms) <= set(CODES)
        for s in symptoms:
            assert not explains(s, cause), (cause, s)


def test_explains_is_transitive():
    assert explains("lr-too-high", "nonfinite")            # direct
    assert explains("bad-initialization", "underfitting")  # via exploding gradients etc.
    assert not explains("dead-relu", "lr-too-high")
    assert not explains("label-noise", "dead-relu")


def test_the_cause_leads_and_takes_the_worse_severity():
    out = rank([f("dead-relu", score=0.9), f("nonfinite", "critical", 1.0), f("lr-too-high"),
                f("underfitting"), f("distribution-shift")])
    by = {x.code: x for x in out}
    assert out[0].code == "lr-too-high" and out[0].severity == "critical"
    assert set(out[0].data["explains"]) == {"dead-relu", "nonfinite", "underfitting"}
    assert "this also explains" in out[0].evidence
    for code in ("dead-relu", "nonfinite", "underfitting"):
        assert by[code].severity == "info" and by[code].explained_by == "lr-too-high"
        assert by[code].evidence.startswith("a consequence of lr-too-high")
    assert by["distribution-shift"].explained_by is None   # unrelated: still a problem
    assert [x.code for x in out if x.severity != "info"] == ["lr-too-high", "distribution-shift"]


def test_a_chain_is_credited_to_its_root():
    out = rank([f("saturated-activations"), f("vanishing-gradients"), f("bad-initialization")])
    by = {x.code: x for x in out}
    assert by["vanishing-gradients"].explained_by == "bad-initialization"
    assert by["saturated-activations"].explained_by == "bad-initialization"


def test_label_noise_explains_a_capped_training_accuracy_not_the_other_way():
    out = rank([f("underfitting", score=0.9), f("label-noise")])
    assert out[0].code == "label-noise" and out[1].explained_by == "label-noise"


def test_info_findings_explain_nothing():
    out = rank([f("lr-too-low", "info"), f("underfitting")])
    assert {x.code: x for x in out}["underfitting"].severity == "warning"


def test_shown_as_turns_a_pair_round_and_keeps_the_rest_of_the_chain():
    init = Finding("bad-initialization", CODES["bad-initialization"], "warning", "tiny weights",
                   "fix", (0.0,), 0.7, {"shown_as": "vanishing-gradients"})
    out = rank([init, f("vanishing-gradients"), f("dead-relu", score=0.9), f("underfitting")])
    by = {x.code: x for x in out}
    assert out[0].code == "vanishing-gradients" and out[0].severity == "warning"
    assert by["bad-initialization"].explained_by == "vanishing-gradients"
    assert by["bad-initialization"].evidence.startswith("shown as vanishing-gradients")
    # what the init explained (dead units) goes to the finding that names it, not round a cycle
    assert by["dead-relu"].explained_by == "vanishing-gradients"
    assert by["underfitting"].explained_by == "vanishing-gradients"
    assert set(out[0].data["explains"]) == {"bad-initialization", "dead-relu", "underfitting"}


def test_shown_as_without_its_partner_changes_nothing():
    init = Finding("bad-initialization", CODES["bad-initialization"], "warning", "tiny weights",
                   "fix", (0.0,), 0.7, {"shown_as": "vanishing-gradients"})
    out = rank([init, f("dead-relu")])
    assert out[0].code == "bad-initialization"
    assert {x.code: x for x in out}["dead-relu"].explained_by == "bad-initialization"
