"""Benchmark metrics (VQA soft accuracy, exact match, POPE, multiple choice, REC)."""

from genixer.evaluation.metrics import (
    auroc,
    exact_match,
    extract_choice_letter,
    extract_yes_no,
    multiple_choice_accuracy,
    pope_metrics,
    rec_accuracy,
    vqa_accuracy,
)
from genixer.evaluation.normalize import normalize_answer

__all__ = [
    "auroc",
    "exact_match",
    "extract_choice_letter",
    "extract_yes_no",
    "multiple_choice_accuracy",
    "normalize_answer",
    "pope_metrics",
    "rec_accuracy",
    "vqa_accuracy",
]
