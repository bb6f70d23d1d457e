"""Pretraining from raw text: corpus sources, tokenized documents, instances per objective (mlm_nsp, mlm, sop),
masking, the heads that score masked positions only, and the scores with their trivial baselines."""
