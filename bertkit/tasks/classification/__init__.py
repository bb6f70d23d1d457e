"""Sequence classification: one label (or one score) per sentence or sentence pair, from GLUE or your own files."""
