"""Evaluation: official EM / F1, n-best post-processing, reports."""
