"""Benchmark metrics (VQA soft accuracy, exact match, POPE, multiple choice, REC)."""

from genixer.core.text import normalize_answer
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
