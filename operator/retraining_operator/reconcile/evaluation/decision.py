"""The held-out comparison's verdict, pure: pass only a candidate that is measurably not worse
than the serving model on the same images, and has not forgotten the anchor set.

* Held out: the interval's lower bound on mAP(candidate) - mAP(serving) must reach
  `gate.evaluation.minImprovement` (0: "not worse, with `confidence`").
* Anchor (optional): mAP(serving) - mAP(candidate) on the anchor manifest must not exceed
  `maxForgetting`.
* First deployment (nothing serves): nothing to compare with; the candidate's held-out mAP
  is recorded and it passes (`gate.minimum` on the training metric still applies).
"""

from __future__ import annotations

from dataclasses import dataclass

from retraining_operator.api import ClassComparison, Comparison, GateEvaluationSpec
from retraining_operator.reconcile.evaluation.average_precision import Scores
from retraining_operator.reconcile.evaluation.bootstrap import Difference

TOLERANCE = 1e-9
WORST_CLASSES = 3


@dataclass(frozen=True)
class Measured:
    """What the evaluation measured: both models on the held-out images (the serving one
    absent on a first deployment) and, with an anchor manifest, on it."""

    candidate: Scores
    serving: Scores | None = None
    difference: Difference | None = None
    anchor_candidate: Scores | None = None
    anchor_serving: Scores | None = None
    held_out_version: int | None = None


def _f(value: float) -> str:
    return f"{value:.4f}"


def worst_classes(candidate: Scores, serving: Scores | None) -> list[ClassComparison]:
    """The classes whose AP fell most (at most WORST_CLASSES, only those that fell)."""
    if serving is None:
        return []
    drops = sorted(
        (candidate.per_class[c] - serving.per_class[c], c)
        for c in candidate.per_class
        if c in serving.per_class
    )
    return [
        ClassComparison(class_id=c, candidate=candidate.per_class[c], serving=serving.per_class[c])
        for drop, c in drops[:WORST_CLASSES]
        if drop < -TOLERANCE
    ]


def judge(spec: GateEvaluationSpec, measured: Measured) -> Comparison:
    """The comparison, with its verdict and a sentence naming both mAPs and the interval."""
    candidate, serving, diff = measured.candidate, measured.serving, measured.difference
    problems: list[str] = []
    if serving is None or diff is None:
        summary = (
            f"held-out mAP {_f(candidate.mean_ap)} on {candidate.images} images; no serving "
            "model to compare with (first deployment)"
        )
    else:
        pct = round(diff.confidence * 100, 1)
        summary = (
            f"held-out mAP {_f(diff.candidate)} (candidate) vs {_f(diff.serving)} (serving) on "
            f"{diff.images} images: difference {diff.estimate:+.4f}, {pct:g} % interval "
            f"[{diff.low:+.4f}, {diff.high:+.4f}]"
        )
        if diff.low < spec.min_improvement - TOLERANCE:
            problems.append(
                f"its lower bound is below gate.evaluation.minImprovement {spec.min_improvement:g}"
            )
    anchor = _anchor(spec, measured, problems)
    worst = worst_classes(candidate, serving)
    if worst and problems:
        shown = ", ".join(
            f"class {w.class_id} {w.candidate:.2f} vs {w.serving:.2f}" for w in worst if w.serving
        )
        problems.append(f"largest per-class drops: {shown}")
    passed = not problems
    reason = summary + anchor + ("" if passed else ": " + "; ".join(problems))
    return Comparison(
        passed=passed,
        reason=reason,
        images=candidate.images,
        held_out_version=measured.held_out_version,
        candidate_map=candidate.mean_ap,
        serving_map=serving.mean_ap if serving else None,
        difference=diff.estimate if diff else None,
        low=diff.low if diff else None,
        high=diff.high if diff else None,
        confidence=diff.confidence if diff else None,
        anchor_images=measured.anchor_candidate.images if measured.anchor_candidate else None,
        anchor_candidate_map=measured.anchor_candidate.mean_ap
        if measured.anchor_candidate
        else None,
        anchor_serving_map=measured.anchor_serving.mean_ap if measured.anchor_serving else None,
        worst_classes=worst,
    )


def _anchor(spec: GateEvaluationSpec, measured: Measured, problems: list[str]) -> str:
    """The anchor set's sentence; a forgetting beyond maxForgetting is a problem."""
    candidate, serving = measured.anchor_candidate, measured.anchor_serving
    if candidate is None:
        return ""
    if serving is None:
        return f"; anchor mAP {_f(candidate.mean_ap)} on {candidate.images} images"
    forgot = serving.mean_ap - candidate.mean_ap
    text = (
        f"; anchor mAP {_f(candidate.mean_ap)} vs {_f(serving.mean_ap)} on "
        f"{candidate.images} images"
    )
    if forgot > spec.max_forgetting + TOLERANCE:
        problems.append(
            f"it forgot {forgot:.4f} of the anchor set's mAP (gate.evaluation.maxForgetting "
            f"{spec.max_forgetting:g})"
        )
    return text
