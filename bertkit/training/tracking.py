"""Experiment tracking through Accelerate's trackers (`trainer.report_to`): TensorBoard, W&B, MLflow, ...

The trackers get what `log.jsonl` gets (training lines and evaluations, at their step), the resolved
configuration as hyperparameters and the final metrics. Only the main process logs (Accelerate's trackers are
main-process objects). Local trackers write below the run directory, `<output_dir>/tracking/`, so
`tensorboard --logdir outputs` finds every run.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from accelerate import Accelerator
from accelerate.tracking import LOGGER_TYPE_TO_CLASS

from bertkit.core.batch import is_number
from bertkit.core.errors import ConfigError
from bertkit.core.schema import flatten

TRACKING_DIR = "tracking"
PACKAGES = {
    "tensorboard": ("tensorboard", "pip install tensorboard  (or: pip install -e '.[tensorboard]')"),
    "wandb": ("wandb", "pip install wandb"),
    "mlflow": ("mlflow", "pip install mlflow"),
    "trackio": ("trackio", "pip install trackio"),
    "comet_ml": ("comet_ml", "pip install comet_ml"),
    "aim": ("aim", "pip install aim"),
    "clearml": ("clearml", "pip install clearml"),
    "dvclive": ("dvclive", "pip install dvclive"),
    "swanlab": ("swanlab", "pip install swanlab"),
}
"""Tracker name -> the module it needs and the command that installs it."""


def check_trackers(names: list[str]) -> None:
    """Before any work: every tracker is one Accelerate knows, and its package is installed."""
    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise ConfigError(
                f"invalid setting trainer.report_to: {name!r} is not a tracker Accelerate supports "
                f"({', '.join(sorted(LOGGER_TYPE_TO_CLASS))})"
            )
        module, install = PACKAGES.get(name, (name, f"pip install {name}"))
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"invalid setting trainer.report_to: {name} is not installed; {install}")


def start(accelerator: Accelerator, run_name: str, hyperparameters: dict[str, Any]) -> None:
    """Open the run in every tracker (main process), with the flat configuration as its hyperparameters."""
    if accelerator.log_with:
        accelerator.init_trackers(run_name, config=_scalars(flatten(hyperparameters)))


def log_record(accelerator: Accelerator, record: dict[str, Any]) -> None:
    """One log.jsonl record: a training line's numbers, or an evaluation's scores as eval/<split>/<metric>."""
    if not accelerator.log_with:
        return
    values = {f"train/{k}": v for k, v in record.items() if k not in ("step", "epoch", "eval")}
    values |= {f"eval/{key}": v for key, v in flatten(record.get("eval", {}), "/").items()}
    numbers = {key: v for key, v in values.items() if is_number(v)}
    if numbers:
        accelerator.log(numbers, step=int(record["step"]))


def finish(accelerator: Accelerator, scores: dict[str, dict[str, Any]], step: int) -> None:
    """The final metrics (the model's, as metrics.json holds them), then close every tracker."""
    if accelerator.log_with:
        final = {f"final/{key}": v for key, v in flatten(scores, "/").items() if is_number(v)}
        accelerator.log(final, step=step)
        accelerator.end_training()


def _scalars(values: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as trackers take them: numbers, strings and booleans (lists as text, None as "None")."""
    return {key: v if isinstance(v, (int, float, str, bool)) else str(v) for key, v in values.items()}
