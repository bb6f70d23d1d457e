"""Shared vocabulary at the bottom of the import graph: batch keys and types, what a task hands the model
recipe and the trainer, seeding and fingerprints, schema helpers and errors. Nothing here imports the rest
of bertkit."""
