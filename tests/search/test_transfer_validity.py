"""search.transfer_validity: the four rules a target analogue must meet, and the effects per target."""

from __future__ import annotations

import math

import pytest

from xstilts.search.transfer_validity import (
    effects_by_target,
    paired_effect,
    paper_comparison,
    spearman,
    target_validity,
    validity_markdown,
    validity_table,
)

OVERLAP = {"en": 1.0, "xa": 0.48, "xb": 0.33, "xc": 0.19, "xd": 0.095, "xe": 0.095, "xz": 0.0}
OBJ = ["xa", "xb", "xc", "xd", "xe"]
GOOD = {"en": 0.95, "xa": 0.91, "xb": 0.90, "xc": 0.89, "xd": 0.85, "xe": 0.46, "xz": 0.50}


def test_spearman_ranks_with_ties() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([0.5, 0.3, 0.2, 0.1, 0.1], [0.99, 0.95, 0.96, 0.8, 0.44]) == pytest.approx(0.8721, abs=1e-4)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # no spread in x: undefined, not 0


def test_a_graded_learnable_target_below_the_ceiling_is_valid() -> None:
    row = target_validity(GOOD, 1 / 3, OVERLAP, OBJ, ["xz"])
    assert row["valid"] and all(row["checks"].values())
    assert row["en"] == 0.95 and row["control"] == 0.50
    assert row["control_gap"] == pytest.approx(0.41)  # the best objective language, xa, minus the control
    assert row["spearman"] == pytest.approx(0.975, abs=1e-3)
    assert list(row["languages"]) == OBJ


@pytest.mark.parametrize(("change", "broken"), [
    ({"en": 0.52}, "learnable"),  # English within 0.2 of chance
    ({"xa": 0.80, "xb": 0.86, "xc": 0.88, "xd": 0.90}, "graded"),  # scores rise as overlap falls
    ({"xz": 0.80}, "control_gap"),  # the control keeps almost all of the best language's score
    ({"en": 0.99}, "below_ceiling"),  # English at the ceiling
    ({"xz": 0.98, "xa": 0.99}, "below_ceiling"),  # any language counts, the control too
])
def test_each_rule_fails_on_its_own(change: dict[str, float], broken: str) -> None:
    row = target_validity({**GOOD, **change}, 1 / 3, OVERLAP, OBJ, ["xz"])
    assert not row["valid"]
    assert row["checks"][broken] is False


def test_retrieval_has_no_english_score_and_is_judged_on_its_best_language() -> None:
    scores = {"xa": 0.38, "xb": 0.31, "xc": 0.20, "xd": 0.15, "xe": 0.02, "xz": 0.04}
    row = target_validity(scores, 0.0, OVERLAP, OBJ, ["xz"])
    assert row["en"] is None and row["valid"]
    low = {**scores, "xa": 0.19, "xb": 0.18, "xc": 0.17}  # the best language within 0.2 of chance
    assert not target_validity(low, 0.0, OVERLAP, OBJ, ["xz"])["checks"]["learnable"]


def test_the_markdown_table_marks_what_fails() -> None:
    table = validity_table({"xnli": GOOD, "pawsx": {**GOOD, "en": 0.5}}, {"xnli": 1 / 3, "pawsx": 0.5}, OVERLAP,
                           OBJ, ["xz"])
    md = validity_markdown(table, OBJ).splitlines()
    assert md[0].startswith("| target | chance | en | xa |") and md[0].endswith("| valid |")
    assert md[2] == ("| xnli | .333 | .950 | .910 | .900 | .890 | .850 | .460 | .500 | .975 | .410 | yes |")
    assert "| **.500** |" in md[3] and md[3].endswith("| no |")
    retrieval = {"xa": 0.19, "xb": 0.17, "xc": 0.12, "xd": 0.14, "xe": 0.06, "xz": 0.01}  # no English score
    md = validity_markdown(validity_table({"tatoeba": retrieval}, {"tatoeba": 0.0}, OVERLAP, OBJ, ["xz"]), OBJ)
    assert md.splitlines()[2].startswith("| tatoeba | .000 | – | **.190** | .170 |")  # the best, not learnable


def test_paired_effects_and_their_mean_over_tasks() -> None:
    assert paired_effect([0.5, 0.6, 0.7], [0.6, 0.6, 0.8]) == pytest.approx((0.2 / 3, 0.0333, ), abs=1e-4)
    by = effects_by_target({"xnli": [0.5, 0.6, 0.7], "bucc": [0.3, 0.3, 0.3]},
                           {"xnli": {"mnli": [0.5, 0.6, 0.7], "qqp": [0.4, 0.5, 0.6]},
                            "bucc": {"mnli": [0.4, 0.5, 0.4], "qqp": [0.5, 0.5, 0.5]}})
    assert by["xnli"]["effect"] == pytest.approx({"mnli": 0.0, "qqp": -0.1})
    assert by["xnli"]["se"]["qqp"] == pytest.approx(0.0, abs=1e-12)
    assert by["bucc"]["mean"] == pytest.approx(((0.1 + 0.2 + 0.1) / 3 + 0.2) / 2)
    assert by["bucc"]["mean_se"] == pytest.approx(math.sqrt(by["bucc"]["se"]["mnli"] ** 2) / 2)
    cmp = paper_comparison(by)
    assert cmp["ranked_by_mean_effect"] == ["bucc", "xnli"]
    assert cmp["paper_targets_in_top"] == ["bucc"]
    assert cmp["xnli_mean_effect_nil"] is False  # qqp lowers it by 0.1 on every seed: not nil
