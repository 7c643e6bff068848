"""`tsad train`, `tsad presets` and `tsad evaluate` (registered by the `tsad` command in `tsad.cli`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (ECG5000 layouts by default; --series for generic telemetry)")
    g.add_argument("--data", help="ECG5000-style file (TF ecg.csv or UCR, .gz ok) or an http(s)/file URL; "
                   "default: $TSAD_ECG5000, else the public TF ecg.csv download (cached, checksummed)")
    g.add_argument("--layout", default="auto", help="auto | tf | ucr-first | ucr-last (default: auto)")
    g.add_argument("--series", help="CSV or Parquet telemetry (path or http(s)/file URL): a time column and one or "
                   "more channel columns, optionally a point label (e.g. timestamp,value,label or a SKAB file)")
    g.add_argument("--windows", help="JSON Lines window file (the sample-stream format)")
    g.add_argument("--window", type=int, default=140, help="window length for --series (default: 140)")
    g.add_argument("--stride", type=int, help="stride for --series (default: the window length)")
    g.add_argument("--sep", help="--series CSV separator (default: sniffed among , ; tab |)")
    g.add_argument("--time-column", dest="time_column",
                   help="--series time column (default: timestamp, datetime, time, date or ts)")
    g.add_argument("--channels", help="--series channel columns, comma separated, in this order (default: every "
                   "numeric column that is not the time or a label)")
    g.add_argument("--label-column", dest="label_column",
                   help="--series point-label column, or 'none' (default: label, anomaly or is_anomaly if present)")
    g.add_argument("--source-column", dest="source_column",
                   help="--series source column of a long-format file (several sources, windowed each on its own)")


def _load(args: argparse.Namespace) -> Any:
    from trainer.datasets import load_ecg5000, resolve_ecg_source

    if args.series:
        from trainer.telemetry import SeriesOptions, load_series_windows

        channels = tuple(c.strip() for c in args.channels.split(",") if c.strip()) if args.channels else None
        options = SeriesOptions(args.sep, args.time_column, channels, args.label_column, args.source_column)
        return load_series_windows(args.series, args.window, args.stride, options)
    if args.windows:
        from trainer.window_files import load_window_file

        return load_window_file(args.windows)
    # A 5000-row UCR ECG5000 is cut to the TF file's 4998 rows so every preset uses the reference split.
    return load_ecg5000(resolve_ecg_source(args.data), args.layout).tf_reference_rows()


def _print_metrics(title: str, metrics: dict[str, Any]) -> None:
    test = metrics.get("test", metrics)
    if "accuracy" not in test:
        print(f"{title}: no labels, no accuracy figures", file=sys.stderr)
        return
    a, n = test["anomaly_class"], test["normal_class"]
    auc = "n/a" if test["roc_auc"] is None else f"{test['roc_auc']:.4f}"
    print(f"{title}: accuracy {test['accuracy']:.4f}  ROC-AUC {auc}\n"
          f"  anomaly class  P {a['precision']:.4f}  R {a['recall']:.4f}  F1 {a['f1']:.4f}\n"
          f"  normal class   P {n['precision']:.4f}  R {n['recall']:.4f}  F1 {n['f1']:.4f}", file=sys.stderr)
    points = metrics.get("test_points") or test.get("points")
    if points:
        print(f"  points         F1 {points['f1']:.4f}  FAR {points['far']:.2f}%  MAR {points['mar']:.2f}% "
              f"({points['n']} points, causal verdicts)", file=sys.stderr)


def _train_config(args: argparse.Namespace) -> tuple[Any, int]:
    """(config, seed): a preset or a training file (or bundle), then the single-key overrides, validated once."""
    from trainer.presets import get_preset
    from trainer.train_file import load_train_file, parse_assignments, with_overrides

    recorded = None
    if args.config and args.preset:
        raise ValueError("--config and --preset: give one (a training file can start from a preset with `base:`)")
    if args.config:
        config, recorded = load_train_file(args.config)
    else:
        config = get_preset(args.preset or "default")
    overrides = {k: getattr(args, k) for k in ("epochs", "batch_size", "learning_rate", "threshold",
                                                "validation_fraction") if getattr(args, k) is not None}
    if args.per_source_thresholds:
        overrides["per_source_thresholds"] = True
    overrides.update(parse_assignments(args.set or []))
    if overrides:
        config = with_overrides(config, overrides)
    return config, args.seed if args.seed is not None else int(recorded or 0)


def cmd_train(args: argparse.Namespace) -> int:
    from trainer.assessment import report_for_training
    from trainer.pipeline import print_epoch, train
    from trainer.report import write_report

    config, seed = _train_config(args)
    dataset = _load(args)
    if dataset.is_normal is None and config.threshold == "f1_optimal":
        config = config.replace(threshold="fpr_quantile", threshold_params={"fpr": 0.01})
        print("tsad train: the data has no labels: calibrating the threshold at a 1% false-positive rate on "
              "held-out windows (fpr_quantile) instead of F1", file=sys.stderr)
    shape = f"{dataset.window}" if len(dataset.channels) == 1 else (
        f"{len(dataset.channels)} channels x {dataset.window} ({', '.join(dataset.channels)})")
    print(f"tsad train: {len(dataset)} windows of {shape} from {dataset.source}, preset {config.preset}"
          + (", split by time" if dataset.ordered else ""), file=sys.stderr)
    result = train(dataset, config, seed=seed, name=args.name or f"tsad-{config.preset}",
                   on_epoch=None if args.quiet else print_epoch)
    out = result.bundle.save(args.out)
    print(f"tsad train: bundle {result.bundle.name} {result.bundle.version} written to {out} "
          f"({result.history.seconds:.1f} s, {len(result.history.train_loss)} epochs)", file=sys.stderr)
    _print_metrics("test split", result.metrics)
    report = None
    if args.report:
        report = write_report(report_for_training(result), args.report)
        print(f"tsad train: report {report}", file=sys.stderr)
    if args.json:
        print(json.dumps({"bundle": str(out), "version": result.bundle.version,
                          "threshold": result.bundle.threshold.to_dict(), "metrics": result.metrics,
                          "report": None if report is None else str(report)}))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from trainer.presets import PRESET_NOTES, PRESETS, get_preset
    from trainer.train_file import dump_train_file

    if args.action == "show":
        config = get_preset(args.name)
        print(dump_train_file(config, f"tsad training file: preset {args.name}\n{PRESET_NOTES.get(args.name, '')}\n"
                                      "edit it and train with: tsad train --config FILE (flags and --set KEY=VALUE "
                                      "override single keys)"), end="")
        return 0
    width = max(map(len, PRESETS))
    for name in PRESETS:
        print(f"{name:<{width}}  {PRESET_NOTES.get(name, '')}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from detector.model.bundle import ModelBundle
    from trainer.assessment import evaluate_bundle
    from trainer.report import write_report

    bundle = ModelBundle.load(args.bundle)
    dataset = _load(args)
    data = evaluate_bundle(bundle, dataset, args.split)
    _print_metrics(f"{args.split} split", data.metrics)
    report = write_report(data, args.out)
    print(f"tsad evaluate: report {report}", file=sys.stderr)
    if args.json:
        print(json.dumps({"bundle": args.bundle, "split": args.split, "metrics": data.metrics,
                          "report": str(report)}))
    return 0


def register(sub: Any) -> None:
    t = sub.add_parser("train", help="train a model and write a bundle")
    _add_data_args(t)
    t.add_argument("--preset", help="a named training file (default: default; `tsad presets` lists them)")
    t.add_argument("--config", help="a training file (YAML/JSON, `tsad presets show NAME` prints one to start "
                   "from) or a bundle, to train its recorded file again with its seed")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one key of the training file, "
                   "value as YAML (repeatable): --set loss=mse --set architecture.hidden=[64,32,8]")
    t.add_argument("--out", required=True, help="bundle directory to write")
    t.add_argument("--name", help="model name stored in the bundle (default: tsad-<preset>)")
    t.add_argument("--seed", type=int, help="default: the bundle's seed with --config BUNDLE, else 0")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", dest="batch_size", type=int)
    t.add_argument("--learning-rate", dest="learning_rate", type=float)
    t.add_argument("--validation-fraction", dest="validation_fraction", type=float)
    t.add_argument("--threshold", help="mean_std | fpr_quantile | f1_optimal | pot | max_factor")
    t.add_argument("--per-source-thresholds", dest="per_source_thresholds", action="store_true",
                   help="also calibrate a threshold per source (windows must name their source); others use the "
                   "global one")
    t.add_argument("--report", help="also write the evaluation report (HTML, Markdown, PNGs) here")
    t.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
    t.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    t.set_defaults(func=cmd_train)

    p = sub.add_parser("presets", help="list the presets, or print one as a training file")
    actions = p.add_subparsers(dest="action")
    actions.add_parser("list", help="the presets, one line each (the default)")
    show = actions.add_parser("show", help="print a preset as a training file (YAML)")
    show.add_argument("name")
    p.set_defaults(func=cmd_presets)

    e = sub.add_parser("evaluate", help="evaluate a bundle and write the report")
    _add_data_args(e)
    e.add_argument("--bundle", required=True)
    e.add_argument("--split", default="test", help="test (the bundle's held-out split) | all")
    e.add_argument("--out", default="reports/latest", help="report directory (default: reports/latest)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)
