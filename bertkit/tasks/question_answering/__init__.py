"""Extractive question answering (SQuAD v1.1 / v2.0): an answer span in a context, per question."""
