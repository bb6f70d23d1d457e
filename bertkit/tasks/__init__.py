"""Tasks: each family (pretraining, sequence classification, token classification, question answering,
multiple choice) in one place, behind the `Task` interface of `base.py`; `registry.py` maps a data config to
its task. A task never imports another task."""
