"""The run directory: which run it holds, when it is claimed, and why nothing in it is ever lost.

A run directory is claimed (created, its record written) only when every input was read and checked and
training is about to start, so a run that fails before leaves no trace that could block its fix. The record:

- `config.yaml`: the configuration of the run's first start, as trained (a checkpoint's sizes, not a preset's);
- `inputs.json`: a fingerprint of every file, folder and checkpoint its results depend on (`fingerprints`);
- `history.jsonl`: one line for each later start that changed a setting or an input, with both values.

A later start resumes the run only when its settings (the resumable ones aside) and its inputs are the
record's; `trainer.resume=force` resumes although they changed, and appends the change to the history. A
start that cannot continue the run there (`trainer.resume=never`, no checkpoint to continue from, files
that are no bertkit run) moves what the folder holds aside, to `DIR.prev-N`, when it claims the folder.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from logging.handlers import MemoryHandler
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from bertkit import fingerprints
from bertkit.config import RunConfig, resumable_settings, schema_defaults
from bertkit.core.atomic import atomic_write
from bertkit.core.errors import ConfigError
from bertkit.core.schema import flatten, input_settings
from bertkit.settings import SIZES, ResumeMode
from bertkit.training import checkpoints

log = logging.getLogger(__name__)
CONFIG, INPUTS, HISTORY, METRICS, TRAIN_LOG = "config.yaml", "inputs.json", "history.jsonl", "metrics.json", "train.log"
EARLIER = "earlier"
RESULTS = (METRICS, "model", "predictions", "curves.png")
"""What a finished run wrote that continuing it would replace: kept under earlier/step_N/."""
WHERE_NOT_WHAT = {"output_dir"}
"""Settings that say where the run is, not what it is."""
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


class NothingToTrain(Exception):
    """The run directory holds this run, finished; its results stay as they are (not an error: exit 0)."""


@dataclass(frozen=True)
class Plan:
    """What this start does with its run directory."""

    run_dir: Path
    resume: bool = False
    """A checkpoint there continues this run."""
    move_aside: bool = False
    """The folder holds something this start does not continue: it goes to DIR.prev-N on claim."""
    changes: dict[str, Any] = field(default_factory=dict)
    """Settings ([before, now]) and inputs (what changed) that differ from the run's record."""


def record_of(run: RunConfig) -> dict[str, Any]:
    """The run's configuration as config.yaml holds it: resolved, enums by name."""
    return cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(run), enum_to_str=True))


def input_fingerprints(run: RunConfig) -> dict[str, Any]:
    return fingerprints.of_settings(input_settings(run))


def plan(run: RunConfig, inputs: dict[str, Any]) -> Plan:
    """Decide, before any work, whether this start begins the run, continues it, or is refused."""
    run_dir = Path(run.output_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"invalid setting output_dir: {run.output_dir} is a file, not a folder")
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return Plan(run_dir)
    if run.trainer.resume == ResumeMode.never or not (run_dir / CONFIG).is_file():
        return _aside(run, run_dir)
    if checkpoints.complete(run_dir / checkpoints.CHECKPOINTS):
        return Plan(run_dir, resume=True, changes=_changes(run, run_dir, inputs))
    if (run_dir / METRICS).is_file():
        _finished_without_checkpoints(run, run_dir, _changes(run, run_dir, inputs))
    return _aside(run, run_dir)  # a start that never saved (it failed early): nothing to continue, begin again


def _aside(run: RunConfig, run_dir: Path) -> Plan:
    """Begin anew, moving what the folder holds aside; refused where moving it would pull the ground from
    under something."""
    reason = _why_it_stays(run, run_dir)
    if reason is not None:
        raise ConfigError(
            f"invalid setting output_dir: {run.output_dir} holds no run to continue and {reason}, so bertkit will "
            "not move it aside; choose another output_dir"
        )
    return Plan(run_dir, move_aside=True)


def _why_it_stays(run: RunConfig, run_dir: Path) -> str | None:
    here = run_dir.resolve()
    if Path.cwd().resolve().is_relative_to(here):
        return "it is (or holds) the working directory"
    inside = [key for key, place in _input_places(run) if place.is_relative_to(here)]
    if inside:
        return f"it holds the files of {inside[0]}"
    others = [p.parent for p in (*run_dir.glob("*/config.yaml"), *run_dir.glob("*/*/config.yaml"))]
    if others:
        return f"it holds other runs ({others[0]})"
    return None


def _input_places(run: RunConfig) -> list[tuple[str, Path]]:
    places = []
    for key, value in input_settings(run).items():
        for spelled in value if isinstance(value, list) else [value]:
            if spelled is not None and Path(str(spelled)).expanduser().exists():
                places.append((key, Path(str(spelled)).expanduser().resolve()))
    return places


def _changes(run: RunConfig, run_dir: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    """Differences from the record; those a plain resume may not have stop the start, unless it is forced."""
    recorded_inputs = _recorded_inputs(run_dir)
    inputs_changed = {}
    if recorded_inputs is not None:
        for key in sorted(set(recorded_inputs) | set(inputs)):
            how = fingerprints.difference(recorded_inputs.get(key), inputs.get(key))
            if how is not None:
                inputs_changed[key] = how
    ignored = WHERE_NOT_WHAT | (set(input_settings(run)) if recorded_inputs is not None else set())
    if recorded_inputs is None and run.model.name_or_path is not None:
        ignored |= {f"model.{key}" for key in SIZES}  # recorded before config.yaml held a checkpoint's own sizes
    if run.model.name_or_path is not None:
        ignored.add("model.architecture")  # the checkpoint's own, which its fingerprint already follows
    before, now = _recorded_settings(run, run_dir), flatten(record_of(run))
    settings = {
        key: [before.get(key), now.get(key)]
        for key in sorted(set(before) | set(now))
        if key not in ignored and before.get(key) != now.get(key)
    }
    forced = run.trainer.resume == ResumeMode.force
    resumable = resumable_settings(run)
    blocking = [key for key in settings if key not in resumable]
    if inputs_changed and not forced:
        key, how = next(iter(inputs_changed.items()))
        raise ConfigError(
            f"invalid setting {key}: {_spelled(run, key)} changed since the run in {run.output_dir} started "
            f"({how}); to train on it, choose another output_dir (or add trainer.resume=never to move the "
            "earlier run aside); to continue that run, restore it, or add trainer.resume=force"
        )
    if blocking and not forced:
        shown = "; ".join(f"{key}: {settings[key][0]!r} there, {settings[key][1]!r} now" for key in blocking[:3])
        more = f" and {len(blocking) - 3} more" if len(blocking) > 3 else ""
        raise ConfigError(
            f"invalid setting output_dir: {run.output_dir} holds a run with another configuration ({shown}{more}); "
            "to start fresh, choose another output_dir (or add trainer.resume=never to move that run aside); to "
            "continue it with these settings on purpose, add trainer.resume=force"
        )
    if forced and (blocking or inputs_changed):
        log.warning("Resuming %s although these changed: %s", run_dir, ", ".join([*blocking, *inputs_changed]))
    return {"settings": settings, "inputs": inputs_changed} if settings or inputs_changed else {}


def _finished_without_checkpoints(run: RunConfig, run_dir: Path, changes: dict[str, Any]) -> None:
    """A finished run that saved no checkpoint: nothing to continue from, and nothing to redo."""
    if changes:
        changed = ", ".join([*changes.get("settings", {}), *changes.get("inputs", {})])
        raise ConfigError(
            f"invalid setting output_dir: {run.output_dir} holds a finished run without checkpoints, so it cannot "
            f"continue with changed {changed}; add trainer.resume=never to move it aside and train anew, or "
            "choose another output_dir"
        )
    raise NothingToTrain(
        f"{run.output_dir} holds this run, finished; its results are kept (trainer.resume=never trains it "
        "anew, moving these aside)"
    )


def claim(plan: Plan, run: RunConfig, inputs: dict[str, Any], step: int) -> None:
    """Make the folder this run's (main process, just before training): move aside what it does not continue,
    then write the record of a first start, or append this start's changes to the history."""
    run_dir = plan.run_dir
    if plan.move_aside and run_dir.is_dir() and any(run_dir.iterdir()):
        aside = _free_name(run_dir)
        run_dir.rename(aside)
        log.warning("Moved what %s held to %s (kept: nothing is deleted)", run_dir, aside)
    run_dir.mkdir(parents=True, exist_ok=True)
    if plan.resume and (run_dir / METRICS).is_file():
        _keep_earlier_results(run_dir, step)
    if not plan.resume:
        atomic_write(run_dir / CONFIG, OmegaConf.to_yaml(record_of(run)))
        atomic_write(run_dir / INPUTS, json.dumps(inputs, indent=1) + "\n")
    elif plan.changes:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "resumed_at_step": step,
            "resume": str(run.trainer.resume),
            **plan.changes,
            "input_fingerprints": {key: inputs.get(key) for key in plan.changes.get("inputs", {})},
        }
        with (run_dir / HISTORY).open("a") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")


def _keep_earlier_results(run_dir: Path, step: int) -> None:
    """A finished run continued with a bigger budget: its results at `step` move to earlier/step_N/."""
    kept = run_dir / EARLIER / f"step_{step}"
    kept = _free_name(kept) if kept.exists() else kept
    kept.mkdir(parents=True)
    for name in RESULTS:
        if (run_dir / name).exists():
            (run_dir / name).rename(kept / name)
    log.info("Kept the results of step %d in %s", step, kept)


def check_writable(run_dir: Path) -> None:
    """Fail at start-up, not after hours of training, when the run directory could not be created or written
    (nothing is created here: the folder is made when the run claims it)."""
    existing = run_dir.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"invalid setting output_dir: {run_dir} cannot be written ({existing} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"invalid setting output_dir: {run_dir} cannot be written (Permission denied)")


def _recorded_settings(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """config.yaml with the history's changes applied; a setting it lacks (written before bertkit had it)
    counts as having had its schema default."""
    recorded = flatten(OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG), resolve=True))
    for entry in _history(run_dir):
        recorded |= {key: values[1] for key, values in entry.get("settings", {}).items()}
    defaults = schema_defaults(run)
    return recorded | {key: value for key, value in defaults.items() if key not in recorded}


def _recorded_inputs(run_dir: Path) -> dict[str, Any] | None:
    """inputs.json with the history's changes applied; None for a run recorded before bertkit kept one."""
    if not (run_dir / INPUTS).is_file():
        return None
    recorded = json.loads((run_dir / INPUTS).read_text())
    for entry in _history(run_dir):
        for key, fingerprint in entry.get("input_fingerprints", {}).items():
            if fingerprint is None:
                recorded.pop(key, None)
            else:
                recorded[key] = fingerprint
    return cast(dict[str, Any], recorded)


def _history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / HISTORY
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _spelled(run: RunConfig, key: str) -> str:
    return str(input_settings(run).get(key))


def _free_name(path: Path) -> Path:
    """`path.prev-N` for the first N that is free."""
    index = 1
    while path.with_name(f"{path.name}.prev-{index}").exists():
        index += 1
    return path.with_name(f"{path.name}.prev-{index}")


class RunLog:
    """train.log: the main process's messages are held in memory until the run claims its folder, then
    written there; a run that fails before leaves no file."""

    def __init__(self) -> None:
        self.root = logging.getLogger()
        # The console's format (conf/hydra/job_logging/bertkit.yaml) where there is a console handler.
        formats = [h.formatter for h in self.root.handlers if h.formatter is not None]
        self.formatter = formats[0] if formats else logging.Formatter(LOG_FORMAT)
        self.held = MemoryHandler(capacity=1 << 20, flushLevel=logging.CRITICAL + 1, flushOnClose=False)
        self.file: logging.Handler | None = None
        self.root.addHandler(self.held)

    def discard(self) -> None:
        """Processes other than the main one write no train.log: hold nothing for it."""
        self.root.removeHandler(self.held)
        self.held.buffer.clear()

    def __enter__(self) -> RunLog:
        return self

    def write_to(self, path: Path) -> None:
        self.file = logging.FileHandler(path, mode="a", encoding="utf-8")
        self.file.setFormatter(self.formatter)
        self.held.setTarget(self.file)
        self.held.flush()
        self.root.removeHandler(self.held)
        self.root.addHandler(self.file)

    def __exit__(self, *_: object) -> None:
        for handler in (self.held, self.file):
            if handler is not None:
                self.root.removeHandler(handler)
                handler.close()
