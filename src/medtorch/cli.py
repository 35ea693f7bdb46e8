"""Command line: ``medtorch data | train | evaluate | predict | explain | ecg-score | export | demo | models | recipes``.

User mistakes print one line (``error: ...``) and exit with code 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from medtorch import __version__
from medtorch.errors import ConfigError, MedtorchError, SplitError

log = logging.getLogger("medtorch")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medtorch", description="Deep learning on healthcare data.")
    p.add_argument("--version", action="version", version=f"medtorch {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument(
        "--data-dir", help="data folder (else $MEDTORCH_DATA, else the user cache folder)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    d = sub.add_parser("data", help="list, describe, verify or fetch datasets")
    dsub = d.add_subparsers(dest="data_cmd", required=True, metavar="ACTION")
    dsub.add_parser("list", help="known datasets and whether they are present")
    for name, help_ in (
        ("info", "everything about one dataset"),
        ("verify", "check sha256 checksums"),
        ("fetch", "download from the publisher and verify"),
    ):
        sp = dsub.add_parser(name, help=help_)
        sp.add_argument("name")
        if name == "fetch":
            sp.add_argument("--from", dest="source", default=None, metavar="FILE",
                            help="install from a local archive (checked against its checksum file)")  # fmt: skip
    cv = dsub.add_parser(
        "convert", help="write an EHR source as a MEDS folder (other MEDS tools read it)"
    )
    cv.add_argument("source", help="mimic3, mimic4, meds or events, or a dataset (mimic3_demo...)")
    cv.add_argument("out_dir")
    cv.add_argument("--to", default="meds", choices=["meds"], help="output format (meds)")
    cv.add_argument("--path", help="the source folder or table (default: the dataset's folder)")

    t = sub.add_parser("train", help="train a recipe and write a run folder")
    t.add_argument("recipe", nargs="?", help="recipe file or name (see `medtorch recipes`)")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set trainer.max_epochs=3 (repeatable)",
    )
    t.add_argument("--out", default="runs", help="parent folder of run folders (default: runs)")
    t.add_argument(
        "--resume", metavar="RUN_DIR", help="continue an interrupted run exactly where it stopped"
    )

    e = sub.add_parser("evaluate", help="re-score a run's best checkpoint on its test split")
    e.add_argument("run_dir")
    e.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="eval.KEY=VALUE",
        help="change how the run is scored, e.g. --set eval.tta=true",
    )

    pr = sub.add_parser("predict", help="predict with a trained run")
    pr.add_argument("run_dir")
    pr.add_argument(
        "input",
        help="CSV of signals / svmlight file / WFDB record path (without extension) / image "
        "file or folder of images",
    )
    pr.add_argument("--out", required=True, help="output CSV")
    pr.add_argument(
        "--af-run",
        help="with a heartbeat run and a WFDB record: also find AF episodes with this AF run "
        "(written to <out>.episodes.csv)",
    )
    pr.add_argument(
        "--ensemble",
        nargs="+",
        default=[],
        metavar="RUN_DIR",
        help="average the probabilities with these runs of the same recipe (e.g. other seeds)",
    )

    pr.add_argument(
        "--lead", help="WFDB record: the lead to read instead of the run's (e.g. II for INCART)"
    )
    # the choices are medtorch.ecg.predict.DETECTORS (not imported here: it loads torch)
    pr.add_argument("--detector", default=None, choices=["gqrs", "xqrs"],
                    help="QRS detector for a WFDB record without beat annotations (default gqrs)")  # fmt: skip

    xp = sub.add_parser(
        "explain", help="attribution maps (Grad-CAM, saliency) of new inputs with a trained run"
    )
    xp.add_argument("run_dir")
    xp.add_argument(
        "input",
        help="what `medtorch predict` reads for the run's task (an image file or a folder of "
        "images, a CSV of signals)",
    )
    xp.add_argument(
        "--out", required=True, help="output folder: one PNG per input and explanations.json"
    )
    xp.add_argument("--limit", type=int, default=64, help="explain the first N inputs (default 64)")

    sc = sub.add_parser(
        "ecg-score",
        help="score a heartbeat run on annotated WFDB records of any database (AAMI, by record)",
    )
    sc.add_argument("run_dir")
    sc.add_argument("records", nargs="+", help="WFDB record paths (no extension) or folders")
    sc.add_argument("--out", required=True, help="output JSON")
    sc.add_argument(
        "--detect",
        action="store_true",
        help="classify the beats the QRS detector finds, matched to the reference within "
        "--tolerance-s",
    )
    sc.add_argument("--detector", default="gqrs", choices=["gqrs", "xqrs"],
                    help="QRS detector for --detect (default gqrs)")  # fmt: skip
    sc.add_argument("--tolerance-s", type=float, default=0.15, help="match window (EC57: 0.15)")
    sc.add_argument("--lead", help="the records' lead to read instead of the run's")
    sc.add_argument("--ensemble", nargs="+", default=[], metavar="RUN_DIR",
                    help="average the probabilities with these runs of the same recipe")  # fmt: skip
    sc.add_argument("--n-bootstrap", type=int, default=1000, help="record resamples for CIs")

    en = sub.add_parser(
        "ensemble",
        help="score several finished runs of one recipe as one model (their saved validation "
        "and test probabilities averaged)",
    )
    en.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="two or more run folders")
    en.add_argument(
        "--out", required=True, help="output folder: metrics.json and predictions_{valid,test}.csv"
    )

    ex = sub.add_parser(
        "export", help="export a run's best model to ONNX and check it against PyTorch"
    )
    ex.add_argument("run_dir")
    ex.add_argument("--out", required=True, help="output .onnx file")
    ex.add_argument(
        "--n-check", type=int, default=256, help="test rows for the parity check (default 256)"
    )

    dm = sub.add_parser(
        "demo", help="train the seizure CNN on the bundled UCI data and write a report"
    )
    dm.add_argument("--out", default="runs")
    dm.add_argument("--epochs", type=int, help="train this many epochs (default: the recipe's 10)")
    dm.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    sub.add_parser("models", help="list registered models")
    sub.add_parser("recipes", help="list recipes")
    sub.add_parser("tasks", help="list tasks")
    rs = sub.add_parser("runs", help="list run folders: recipe, date, test metrics, status")
    rs.add_argument("dir", nargs="?", default="runs", help="a --out folder (default runs)")
    return p


def _cmd_runs(args: argparse.Namespace) -> int:
    from medtorch.runs import format_runs, list_runs

    print(format_runs(list_runs(args.dir)))
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from medtorch.data import registry
    from medtorch.data.paths import resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    if args.data_cmd == "list":
        print(registry.format_list(data_dir))
        return 0
    if args.data_cmd == "info":
        print(registry.format_info(args.name, data_dir))
        return 0
    if args.data_cmd == "verify":
        rows = registry.verify(args.name, data_dir)
        bad = [r for r in rows if not r[1]]
        for f, ok, reason in rows:
            if not ok:
                print(f"FAIL {f}: {reason}")
        print(f"{args.name}: {len(rows) - len(bad)}/{len(rows)} files OK in {data_dir}")
        if bad:
            raise MedtorchError(
                f"expected matching checksums, got {len(bad)} bad or missing file(s) in "
                f"{data_dir / registry.get_dataset(args.name).folder}; "
                f"re-fetch with `medtorch data fetch {args.name}`"
            )
        return 0
    if args.data_cmd == "convert":
        return _convert(args, data_dir)
    source = Path(args.source) if args.source else None
    done = registry.fetch(args.name, data_dir, source=source)
    if source is not None:
        print(f"{args.name}: {source} verified and installed in {done[-1]}")
    else:
        print(f"{args.name}: fetched and verified in {data_dir}")
    return 0


def _convert(args: argparse.Namespace, data_dir: Path) -> int:
    """``medtorch data convert SOURCE OUT_DIR --to meds``."""
    from medtorch.data.tasks.ehr import DEFAULT_COLUMNS, FORMATS, TABLES
    from medtorch.ehr.load import SOURCES, convert_to_meds

    default = {"mimic3": "mimic3_demo", "mimic4": "mimic4_demo"}
    dataset = args.source if args.source in FORMATS else default.get(args.source)
    fmt_name = FORMATS.get(args.source, args.source)
    if fmt_name not in SOURCES:
        raise MedtorchError(f"expected a source among {', '.join(SOURCES)} or a dataset among "
                            f"{', '.join(FORMATS)}, got {args.source!r} in `medtorch data convert`; "
                            "pick one")  # fmt: skip
    if args.path:
        path = Path(args.path)
    elif dataset is not None:
        path = data_dir / dataset / TABLES.get(dataset, "")
    else:
        raise MedtorchError(f"expected --path for source {args.source!r}, got none in "
                            "`medtorch data convert`; name the folder or table")  # fmt: skip
    config = {"columns": DEFAULT_COLUMNS.get(dataset or "", {})} if fmt_name == "events" else None
    out = convert_to_meds(fmt_name, path, Path(args.out_dir), config, dataset_name=dataset)
    print(f"wrote the {fmt_name} events of {path} as a MEDS folder in {out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from medtorch.config import is_bare_recipe_name, load_config
    from medtorch.recipes import recipe_path
    from medtorch.run_folder import check_output_folder

    if args.resume:
        run_dir = Path(args.resume)
        src = run_dir / "config.yaml"
        if not src.is_file():
            raise MedtorchError(
                f"expected config.yaml in the run folder, got {str(run_dir)!r} without it in "
                "--resume; pass a folder written by `medtorch train`"
            )
        cfg = load_config(src, args.overrides, migrate=True)
        recipe: Path | None = src
    else:
        if not args.recipe:
            raise MedtorchError(
                "expected a recipe, got none in `medtorch train`; e.g. medtorch train lab2_seizure_cnn"
            )
        cfg = load_config(args.recipe, args.overrides)
        recipe = Path(args.recipe)
        if not recipe.is_file() and is_bare_recipe_name(args.recipe):
            recipe = recipe_path(args.recipe)
        check_output_folder(Path(args.out), "--out")
    from medtorch.api import train  # torch: after the recipe checks, so they are quick

    try:
        run_dir = train(cfg, Path(args.out), args.data_dir, resume=args.resume).path
    except (ConfigError, SplitError) as exc:
        # a task, model or split setting is wrong: say which recipe it is in
        if recipe is not None and str(recipe) not in str(exc):
            raise type(exc)(f"{exc} (recipe {recipe})") from None
        raise
    _summary(run_dir)
    return 0


def _metric_line(overall: dict[str, Any]) -> str:
    """The headline metrics of one part's ``overall`` scores, with their CIs."""
    parts = []
    named = [k for k in ("accuracy", "balanced_accuracy", "auroc", "auprc") if k in overall]
    for k in named or list(overall)[:4]:  # a task's own base family: its first four
        v = overall.get(k, {})
        if v.get("value") is not None:
            lo, hi = v.get("ci") or (None, None)
            ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
            parts.append(f"{k} {v['value']:.3f}{ci}")
        elif v.get("note"):  # say why a metric is missing rather than dropping it
            parts.append(f"{k} {v['note']}")
    return ", ".join(parts)


def _summary(run_dir: Path) -> None:
    import json

    from medtorch.train import distributed

    if not distributed.current().main:  # under torchrun, rank 0 wrote the run and prints it
        return

    m = json.loads((run_dir / "metrics.json").read_text())
    print("test: " + _metric_line(m["test"]["overall"]))
    if m.get("leakage_note"):
        print(f"note: {m['leakage_note']}")
    print(f"run folder: {run_dir}")
    print(f"report: {run_dir / 'report.html'}")


def _cmd_demo(args: argparse.Namespace) -> int:
    from medtorch.api import train
    from medtorch.config import load_config
    from medtorch.run_folder import check_output_folder

    check_output_folder(Path(args.out), "--out")
    epochs = [] if args.epochs is None else [f"trainer.max_epochs={args.epochs}"]
    cfg = load_config("lab2_seizure_cnn", ["name=demo_seizure_cnn", *epochs, *args.overrides])
    run_dir = train(cfg, Path(args.out), None, bundled=True).path
    _summary(run_dir)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from medtorch.run_folder import check_output_folder, require_finished

    # evaluate rewrites metrics.json: on an interrupted run that would make it look finished
    check_output_folder(require_finished(Path(args.run_dir), "`medtorch evaluate`"), "run_dir")
    from medtorch.pipeline import evaluate_run

    evaluate_run(Path(args.run_dir), args.data_dir, args.overrides)
    _summary(Path(args.run_dir))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from medtorch.run_folder import check_output_file, require_finished

    af_run = Path(args.af_run) if args.af_run else None
    ensemble = [Path(r) for r in args.ensemble]
    runs = [Path(args.run_dir), *ensemble, *([af_run] if af_run else [])]
    for run in runs:
        require_finished(run, "`medtorch predict`")
    check_output_file(Path(args.out), "--out", runs, [Path(args.input)])
    from medtorch.predict import predict_to_csv

    msg = predict_to_csv(
        Path(args.run_dir), Path(args.input), Path(args.out), ensemble, af_run=af_run,
        lead=args.lead, detector=args.detector,
    )  # fmt: skip
    print(msg)
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from medtorch.run_folder import check_output_folder, require_finished

    run = require_finished(Path(args.run_dir), "`medtorch explain`")
    out = check_output_folder(Path(args.out), "--out")
    for taken in (run, Path(args.input)):
        if out.exists() and taken.exists() and out.resolve() == taken.resolve():
            raise ConfigError(f"expected an output folder that is not the run or the input, got "
                              f"{str(out)!r} in --out; write the maps elsewhere, e.g. explained/")  # fmt: skip
    from medtorch.predict import explain_inputs

    print(explain_inputs(run, Path(args.input), out, args.limit))
    return 0


def _cmd_ecg_score(args: argparse.Namespace) -> int:
    import json

    from medtorch.ecg.score import format_summary, score_records
    from medtorch.run_folder import check_output_file, require_finished

    runs = [Path(args.run_dir), *(Path(r) for r in args.ensemble)]
    for run in runs:
        require_finished(run, "`medtorch ecg-score`")
    check_output_file(Path(args.out), "--out", runs, [Path(r) for r in args.records])
    result = score_records(runs, args.records, args.detect, args.lead, args.tolerance_s,
                           n_bootstrap=args.n_bootstrap, detector=args.detector)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(format_summary(result))
    print(f"wrote {out}")
    return 0


def _cmd_ensemble(args: argparse.Namespace) -> int:
    from medtorch.run_folder import check_output_folder, require_finished

    runs = [require_finished(Path(r), "`medtorch ensemble`") for r in args.run_dirs]
    check_output_folder(Path(args.out), "--out")
    from medtorch.ensemble import PARTS, score_ensemble

    m = score_ensemble(runs, Path(args.out), args.data_dir)
    for part in PARTS:
        print(f"{part}: " + _metric_line(m[part]["overall"]))
    if m.get("leakage_note"):
        print(f"note: {m['leakage_note']}")
    print(f"wrote {Path(args.out) / 'metrics.json'}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from medtorch.run_folder import check_output_file, require_finished

    run = require_finished(Path(args.run_dir), "`medtorch export`")
    check_output_file(Path(args.out), "--out", [run])
    from medtorch.export import export_run

    path, diff, n = export_run(Path(args.run_dir), Path(args.out), args.data_dir, args.n_check)
    print(f"wrote {path}; ONNX Runtime vs PyTorch on {n} test rows: max abs diff {diff:.3g}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    if args.cmd == "models":
        from medtorch.models import list_models
        from medtorch.models.registry import model_info

        for name in list_models():
            print(f"{name:24s} {model_info(name)}")
    elif args.cmd == "recipes":
        from medtorch.recipes import list_recipes

        print("\n".join(list_recipes()))
    else:
        from medtorch.data.tasks.registry import list_tasks

        print("\n".join(list_tasks()))
    return 0


COMMANDS = {
    "data": _cmd_data,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "explain": _cmd_explain,
    "ecg-score": _cmd_ecg_score,
    "ensemble": _cmd_ensemble,
    "export": _cmd_export,
    "demo": _cmd_demo,
    "models": _cmd_list,
    "recipes": _cmd_list,
    "tasks": _cmd_list,
    "runs": _cmd_runs,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        return COMMANDS[args.cmd](args)
    except MedtorchError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the checks above could not foresee (a full disk, a race)
        if args.debug:
            raise
        where = exc.filename or "a file medtorch was writing"
        print(
            f"error: expected a usable path, got {exc.strerror or exc} in {where}; check the "
            "path, its permissions and the free disk space (--debug shows the traceback)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt as exc:  # a TrainingInterrupted names its run folder and code
        print(
            f"error: {exc}"
            if str(exc)
            else "interrupted; a run can be continued with `medtorch train --resume RUN_DIR`",
            file=sys.stderr,
        )
        return int(getattr(exc, "exit_code", 130))


if __name__ == "__main__":
    sys.exit(main())
