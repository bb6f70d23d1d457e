"""One table from many runs: a sweep's settings, each metric's median, mean, sd, min and max over seeds.

    python -m bertkit.summarize outputs/glue_rte [more folders or run directories] [--output DIR]

Run directories are the folders below the given ones that hold a `config.yaml` and a `metrics.json`. Runs are
grouped by their settings, seed aside; the table names only the settings that differ between groups. The
best setting is the one with the highest median of the headline metric (lowest, for a loss), the convention
of the BERT papers' small-task tables. A Hydra multirun writes this table into its sweep folder when it ends
(`SweepSummary`, a Hydra callback).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from bertkit.artifacts import scores_of
from bertkit.core.batch import is_number
from bertkit.core.schema import flatten
from bertkit.training.selection import LOWER_IS_BETTER

NOT_SETTINGS = {"seed", "output_dir", "cache_dir"}
COUNTS = ("examples", "predictions")
"""Metric names that count what was scored rather than score it: left out of the table."""
SUMMARY = "sweep_summary"


def find_runs(folders: list[Path]) -> list[Path]:
    """Run directories (config.yaml and metrics.json) at or below the folders, earlier/ and .prev-N aside."""
    runs = {p.parent for folder in folders for p in [folder / "metrics.json", *folder.rglob("metrics.json")]}
    return sorted(r for r in runs if (r / "config.yaml").is_file() and "earlier" not in r.parts)


def summarize(runs: list[Path]) -> dict[str, Any]:
    """Groups of runs with the same settings (seed aside), the statistics of each metric over their seeds."""
    records = [read_run(run) for run in runs]
    keys = {key for record in records for key in record["settings"]}
    differing = sorted(k for k in keys if len({str(r["settings"].get(k)) for r in records}) > 1)
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        key = ", ".join(f"{k}={record['settings'].get(k)}" for k in differing) or "(all runs)"
        groups.setdefault(key, []).append(record)
    headline = next((r["headline"] for r in records if r["headline"]), None)
    rows = [_group_row(key, members) for key, members in groups.items()]
    best = _best(rows, headline)
    return {"settings_that_differ": differing, "headline_metric": headline, "best": best, "groups": rows}


def read_run(run: Path) -> dict[str, Any]:
    """A finished run as the tables see it: its settings (flat, seed and paths aside), its numeric scores as
    "split/metric" (counts aside), its seed and its headline metric."""
    settings = flatten(OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=True))
    metrics = json.loads((run / "metrics.json").read_text())
    scores = {
        f"{split}/{name}": value
        for split, values in scores_of(metrics).items()
        for name, value in values.items()
        if is_number(value) and not name.endswith(COUNTS)
    }
    headline = metrics.get("headline_metric") or (metrics.get("best") or {}).get("metric")
    return {
        "run": str(run),
        "seed": settings.get("seed"),
        "settings": {k: v for k, v in settings.items() if k not in NOT_SETTINGS},
        "scores": scores,
        "headline": headline,
    }


def _group_row(key: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = sorted({m for r in members for m in r["scores"]})
    stats = {}
    for metric in metrics:
        values = [r["scores"][metric] for r in members if metric in r["scores"]]
        stats[metric] = {
            "median": statistics.median(values),
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
            "n": len(values),
        }
    return {"setting": key, "seeds": sorted(r["seed"] for r in members), "runs": [r["run"] for r in members],
            "metrics": stats}  # fmt: skip


def _best(rows: list[dict[str, Any]], headline: str | None) -> str | None:
    scored = [row for row in rows if headline in row["metrics"]]
    if not scored or headline is None:
        return None
    lower = headline.endswith(LOWER_IS_BETTER)
    chosen = (min if lower else max)(scored, key=lambda row: row["metrics"][headline]["median"])
    return str(chosen["setting"])


def markdown(summary: dict[str, Any]) -> str:
    """The table: one row per setting, one column per metric (median, mean ± sd, [min, max])."""
    headline = summary["headline_metric"]
    metrics = sorted({m for row in summary["groups"] for m in row["metrics"]}, key=lambda m: (m != headline, m))
    lines = [
        f"# Sweep summary ({len(summary['groups'])} settings)",
        "",
        f"Each cell: median over seeds; mean ± sd [min, max]. Best setting by the median of {headline}: "
        f"**{summary['best']}**."
        if headline
        else "Each cell: median over seeds; mean ± sd [min, max].",
        "",
        "| setting | seeds | " + " | ".join(metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for row in summary["groups"]:
        mark = " (best)" if row["setting"] == summary["best"] else ""
        cells = [_cell(row["metrics"].get(m)) for m in metrics]
        lines.append(f"| {row['setting']}{mark} | {', '.join(map(str, row['seeds']))} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return ""
    return f"{stats['median']:.4g}; {stats['mean']:.4g} ± {stats['sd']:.2g} [{stats['min']:.4g}, {stats['max']:.4g}]"


def write(summary: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{SUMMARY}.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (folder / f"{SUMMARY}.md").write_text(markdown(summary))


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, the summary of its runs in the sweep folder (the other hooks,
    Callback's, do nothing)."""

    def on_multirun_end(self, config: DictConfig, **_: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        runs = find_runs([sweep_dir])
        if runs:
            write(summarize(runs), sweep_dir)
            print(f"bertkit: wrote {sweep_dir / SUMMARY}.md ({len(runs)} runs)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bertkit.summarize", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders or run directories")
    parser.add_argument("--output", type=Path, help="where sweep_summary.md/.json go (default: the first folder)")
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        print(f"bertkit: error: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = find_runs(args.folders)
    if not runs:
        where = ", ".join(map(str, args.folders))
        print(f"bertkit: error: no run directory (config.yaml and metrics.json) below {where}", file=sys.stderr)
        return 2
    summary = summarize(runs)
    write(summary, args.output or args.folders[0])
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
