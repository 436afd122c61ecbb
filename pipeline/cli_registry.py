"""``mar models list|promote`` and ``mar runs compare``: the MLflow model registry from the shell."""

from __future__ import annotations

import argparse
import json
from typing import Any, Sequence

from mvd.config import RegisterConfig

from .errors import UserError

DEFAULTS = RegisterConfig()


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in header]] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _store(args: argparse.Namespace):
    from components.integrations.registry import RegistryError, open_store, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, args.workdir)
    try:
        return uri, open_store(uri)
    except RegistryError as e:
        raise UserError(str(e)) from e


def cmd_models_list(args: argparse.Namespace) -> int:
    from components.integrations.registry import RegistryError, list_versions

    uri, c = _store(args)
    try:
        rows = list_versions(c, args.name, args.metric)
    except RegistryError as e:
        raise UserError(str(e)) from e
    if args.json:
        print(json.dumps(rows))
        return 0
    from components.integrations.registry import lower_is_better

    print(f"model {args.name} ({uri})" + (f"; {args.metric}: lower is better" if lower_is_better(args.metric) else ""))
    if not rows:
        print("  no versions")
        return 0
    print(format_table(["version", "aliases", args.metric, "data_version", "created", "run_id"],
                       [[r["version"], ",".join(r["aliases"]) or "-", r["value"], r["data_version"] or "-",
                         r["created"], r["run_id"] or "-"] for r in rows]))
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    from components.integrations.registry import RegistryError, promote

    uri, c = _store(args)
    try:
        p = promote(c, args.name, args.version, metric=args.metric, margin=args.margin, force=args.force,
                    tracking_uri=uri)
    except RegistryError as e:
        raise UserError(str(e)) from e
    before = f"version {p.previous_champion}" if p.previous_champion else "none"
    if p.promoted:
        print(f"promoted: {p.name} version {p.version} is now champion (was {before}); {p.reason}")
        return 0
    print(f"not promoted: {p.name} version {p.version} stays as it is; champion remains {before}; {p.reason}"
          + ("" if p.previous_champion == p.version else ". Use --force to promote anyway."))
    return 0 if p.previous_champion == p.version else 1


def cmd_runs_compare(args: argparse.Namespace) -> int:
    from components.integrations.registry import RegistryError, compare_runs

    uri, c = _store(args)
    try:
        cmp = compare_runs(c, args.run_ids)
    except RegistryError as e:
        raise UserError(str(e)) from e
    if args.json:
        print(json.dumps(cmp))
        return 0
    header = ["", *(f"{r['run_name'] or r['run_id'][:8]} ({r['run_id'][:8]})" for r in cmp["runs"])]
    print(f"params that differ ({cmp['same_params']} identical ones not shown):")
    print(format_table(header, [[k, *v] for k, v in cmp["params"].items()]) if cmp["params"] else "  none")
    print("\nmetrics (latest value):")
    print(format_table(header, [[k, *v] for k, v in cmp["metrics"].items()]) if cmp["metrics"] else "  none")
    print(f"\nIn the MLflow UI (mlflow ui --backend-store-uri {uri}): open the experiment, tick these runs, "
          "press Compare.")
    return 0


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", default="",
                   help="MLflow tracking URI (default: env MLFLOW_TRACKING_URI, else sqlite:///<workdir>/mlflow.db)")
    p.add_argument("--workdir", default="work", help="workdir of local runs, for the default store (default ./work)")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default=DEFAULTS.model_name, help=f"registered model name (default {DEFAULTS.model_name})")
    p.add_argument("--metric", default=DEFAULTS.primary_metric,
                   help=f"primary metric tag to show/compare (default {DEFAULTS.primary_metric})")
    _store_args(p)


def add_registry_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``models`` and ``runs`` command groups to the ``mar`` parser."""
    models = sub.add_parser("models", help="registered model versions: list, promote")
    msub = models.add_subparsers(dest="models_command", required=True)
    p = msub.add_parser("list", help="versions with aliases, primary metric, data version, creation time")
    _model_args(p)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=cmd_models_list)
    p = msub.add_parser("promote", help="move alias champion to VERSION if it beats the champion "
                                        "(exit 1 when refused)")
    p.add_argument("version")
    _model_args(p)
    p.add_argument("--margin", type=float, default=DEFAULTS.promote_margin,
                   help=f"required improvement over the champion (default {DEFAULTS.promote_margin})")
    p.add_argument("--force", action="store_true", help="promote even if the metric does not beat the champion")
    p.set_defaults(func=cmd_models_promote)

    runs = sub.add_parser("runs", help="MLflow runs: compare")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    p = rsub.add_parser("compare", help="side-by-side params that differ and all metrics of two or more runs")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    _store_args(p)
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=cmd_runs_compare)
