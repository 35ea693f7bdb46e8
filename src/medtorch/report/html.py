"""One self-contained ``report.html`` per run folder (inline CSS, PNGs as data URIs).

Reads (all optional; a missing or unreadable file gives a section that says so):
``config.yaml``, ``splits.json``, ``cohort.json``, ``metrics.json``, ``history.csv``,
``predictions_test.csv``, ``explanations.json``, ``attributions.json`` (and the figures it
names). Writes the PNG plots into the run folder, then ``report.html``.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

import medtorch
from medtorch.config import GROUPED_ALIASES
from medtorch.metrics.families import FAMILIES, MetricFamily
from medtorch.report import plots

RANDOM_SPLIT_WARNING = (
    "random split by rows: samples of one recording, patient or lesion can be in both train and "
    "test; "
    "numbers are optimistic"
)
CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.1em} h2{border-bottom:2px solid #e3e6ea;padding-bottom:.2em;margin-top:1.8em}
.meta{color:#666;font-size:.92em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #dde1e5;padding:.3em .7em;text-align:right}
th{background:#f3f5f7} td:first-child,th:first-child{text-align:left}
tr:nth-child(even) td{background:#fafbfc}
.ci{color:#666;font-size:.88em} .na{color:#999}
.warn{background:#fff4e5;border-left:5px solid #f0a030;padding:.7em 1em;margin:1em 0}
.bad{background:#fdecea;border-left:5px solid #d9534f;padding:.7em 1em;margin:1em 0}
.info{background:#eef5fb;border-left:5px solid #4a90d9;padding:.7em 1em;margin:1em 0}
.missing{color:#8a6d3b;font-style:italic}
img{max-width:100%;border:1px solid #eee;margin:.4em .4em .4em 0}
pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:.85em}
"""

e = html.escape


def _load(path: Path, kind: str) -> tuple[Any, str | None]:
    """(content, problem): content is None with a human-readable problem when unusable."""
    if not path.is_file():
        return None, f"{path.name} is missing from the run folder"
    try:
        text = path.read_text()
        if kind == "json":
            return json.loads(text), None
        if kind == "yaml":
            return (text, yaml.safe_load(text) or {}), None
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        return (rows if rows else None), None if rows else f"{path.name} has no rows"
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return None, f"could not read {path.name}: {exc}"


def _missing(msg: str) -> str:
    return f'<p class="missing">{e(msg)}</p>'


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return '<span class="na">n/a</span>'
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return e(str(v))


def _cell(m: dict[str, Any] | None) -> str:
    """One metric entry ``{"value", "ci", "note"}`` as 'value (lo–hi)'."""
    if not isinstance(m, dict):
        return '<span class="na">n/a</span>'
    out = _num(m.get("value"))
    ci = m.get("ci")
    if ci:
        out += f' <span class="ci">({ci[0]:.3f}–{ci[1]:.3f})</span>'
    if m.get("note"):
        return f'<span title="{e(str(m["note"]))}">{out} *</span>'
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict):
        out: list[tuple[str, Any]] = []
        for k, v in d.items():
            out += _flatten(v, f"{prefix} / {k}" if prefix else str(k))
        return out
    if isinstance(d, list):
        return [(prefix, ", ".join(map(str, d)))]
    return [(prefix, d)]


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{e(alt)}" src="data:image/png;base64,{data}">'


def _plot(fn: Any, *args: Any, alt: str) -> str:
    """Call a plot function, embed the PNG(s) it wrote; a failure becomes a message."""
    try:
        out = fn(*args)
    except Exception as exc:  # one bad file must not cost the whole report
        return _missing(f"could not draw {alt}: {type(exc).__name__}: {exc}")
    paths = out if isinstance(out, tuple) else (out,)
    return "".join(_img(Path(p), alt) for p in paths)


def _cohort_section(cohort: Any, problem: str | None) -> str:
    if cohort is None:
        return _missing(str(problem))
    rows = [[e(k), _num(v)] for k, v in _flatten(cohort)]
    return _table(["count", "value"], rows)


def _split_section(splits: Any, problem: str | None) -> str:
    if not isinstance(splits, dict):
        return _missing(str(problem or "splits.json is not a mapping"))
    method = str(splits.get("method", "unknown"))
    grouped = splits.get("grouped")
    if grouped is None:
        grouped = method in GROUPED_ALIASES or method in ("grouped_kfold", "protocol")
    parts = []
    note = splits.get("leakage_note")
    if not grouped:
        parts.append(
            f'<div class="warn"><b>Warning:</b> {e(str(note or RANDOM_SPLIT_WARNING))}</div>'
        )
    elif note:
        parts.append(f'<div class="info">{e(str(note))}</div>')
    audit = splits.get("leakage_audit", "not recorded")
    css = "bad" if "fail" in str(audit).lower() else "info"
    parts.append(f'<div class="{css}">Split method: <b>{e(method)}</b>; '
                 f"leakage audit: <b>{e(str(audit))}</b></div>")  # fmt: skip
    partitions = splits.get("partitions")
    if isinstance(partitions, dict) and partitions:
        classes: list[str] = []
        for p in partitions.values():
            for c in (p or {}).get("class_counts", {}) if isinstance(p, dict) else {}:
                classes += [str(c)] if str(c) not in classes else []
        rows = []
        for name, p in partitions.items():
            p = p if isinstance(p, dict) else {}
            counts = p.get("class_counts", {}) or {}
            rows.append([e(str(name)), _num(p.get("n")), _num(p.get("n_groups"))]
                        + [_num(counts.get(c)) for c in classes])  # fmt: skip
        parts.append(_table(["partition", "n", "groups", *classes], rows))
    else:
        parts.append(_missing("splits.json has no 'partitions' table"))
    extra = {k: v for k, v in splits.items()
             if k not in ("method", "grouped", "leakage_note", "leakage_audit", "partitions")}  # fmt: skip
    if extra:
        parts.append(_table(["setting", "value"], [[e(k), _num(v)] for k, v in _flatten(extra)]))
    return "".join(parts)


def _metrics_section(metrics: Any, problem: str | None) -> str:
    if not isinstance(metrics, dict) or not any(
        isinstance(metrics.get(k), dict) for k in ("test", "valid")
    ):
        return _missing(str(problem or "metrics.json has no 'test' or 'valid' results"))
    parts = []
    for part in ("test", "valid"):
        m = metrics.get(part)
        if not isinstance(m, dict):
            continue
        level = float(m.get("ci_level", 0.95))
        overall = m.get("overall", {}) or {}
        parts.append(f"<h3>{e(part)}: overall (n={e(str(m.get('n', '?')))}, "
                     f"groups={e(str(m.get('n_groups', '?')))})</h3>")  # fmt: skip
        parts.append(f'<p class="meta">value ({level:.0%} CI); CI method: '
                     f"{e(str(m.get('ci_method', 'not recorded')))}; * = see note</p>")  # fmt: skip
        rows = [[e(k), _cell(v), e(str(v.get("note", ""))) if isinstance(v, dict) else ""]
                for k, v in overall.items()]  # fmt: skip
        parts.append(_table(["metric", "value (CI)", "note"], rows))
        per_class = m.get("per_class", {}) or {}
        if per_class:
            keys = ["sensitivity", "specificity", "ppv", "f1", "auroc"]
            rows = [[e(str(c)), _num(r.get("support"))] + [_cell(r.get(k)) for k in keys]
                    for c, r in per_class.items()]  # fmt: skip
            parts.append(f"<h3>{e(part)}: per class</h3>")
            parts.append(_table(["class", "support", *keys], rows))
        for fam in list(FAMILIES.values())[1:]:  # the base family is the tables above
            if isinstance(m.get(fam.name), dict):
                parts.append(_family_section(part, fam, m[fam.name]))
    stage2 = metrics.get("after_training")
    if isinstance(stage2, dict):
        parts.append(_stage_section(stage2))
    return "".join(parts)


def _family_section(part: str, fam: MetricFamily, report: dict[str, Any]) -> str:
    """One metric family's section, drawn from its declaration: its note, the per-class
    table when it has one, then its overall metrics."""
    note = f"{fam.note_key}: {report.get(fam.note_key, '')}; " if fam.note_key else ""
    html = (f"<h3>{e(part)}: {e(fam.title)}</h3>"
            f'<p class="meta">{e(note)}CI method: '
            f"{e(str(report.get('ci_method', 'not recorded')))}</p>")  # fmt: skip
    if fam.per_class_columns and isinstance(report.get("per_class"), dict):
        keys = list(fam.per_class_columns)
        rows = [[e(str(c)), _num(r.get("support"))] + [_cell(r.get(k)) for k in keys]
                for c, r in report["per_class"].items()]  # fmt: skip
        html += _table(["class", "support", *keys], rows)
    overall: dict[str, Any] = (
        report["overall"] if isinstance(report.get("overall"), dict) else report
    )
    rows = [
        [e(k), _cell(v)] for k, v in overall.items() if isinstance(v, dict) and k != "per_class"
    ]
    return html + _table(["metric", "value (CI)"], rows)


def _explanations_section(samples: Any, problem: str | None) -> str:
    """What the model's own attributions say for a few test samples: each step (visit) with
    its weight and its elements (codes) with the largest contributions to the score."""
    if not isinstance(samples, list):
        return _missing(str(problem or "explanations.json is not a list of samples"))
    parts = ['<p class="meta">the model\'s attributions (e.g. RETAIN: visit weight alpha and '
             "each code's contribution to the positive-class log-odds); most confident "
             "positives first</p>"]  # fmt: skip
    for s in samples:
        if not isinstance(s, dict):
            continue
        parts.append(f"<h3>{e(str(s.get('sample_id')))}: label {e(str(s.get('y_true')))}, "
                     f"score {_num(s.get('score'))}</h3>")  # fmt: skip
        rows = [[_num(st.get("step")), _num(st.get("days_before")), _num(st.get("weight")),
                 e("; ".join(f"{c}: {w:+.3f}" for c, w in st.get("top") or []))]
                for st in s.get("steps") or [] if isinstance(st, dict)]  # fmt: skip
        parts.append(_table(["step", "days before", "weight", "top elements: contribution"], rows))
    return "".join(parts)


def _attributions_section(run_dir: Path, doc: Any, problem: str | None) -> str:
    """Where the model looks (``attributions.json``): the method, the weight-randomisation
    check as one number, then per true class the figure of its example samples."""
    if not isinstance(doc, dict):
        return _missing(str(problem or "attributions.json is not a mapping"))
    head = f'<p class="meta">{e(str(doc.get("method", "method not recorded")))}'
    if doc.get("note"):
        head += f": {e(str(doc['note']))}"
    if doc.get("selection"):
        head += f"; samples shown: {e(str(doc['selection']))}"
    parts = [head + "</p>"]
    if doc.get("unavailable"):
        return "".join(parts) + _missing(f"no attribution maps: {doc['unavailable']}")
    check = doc.get("randomisation")
    if isinstance(check, dict) and isinstance(check.get("spearman"), (int, float)):
        rho = float(check["spearman"])
        css = "warn" if rho >= 0.5 else "info"
        parts.append(f'<div class="{css}">Randomisation check: Spearman correlation with the '
                     f"maps of a weight-randomised model <b>{rho:.2f}</b> "
                     f"(n={e(str(check.get('n', '?')))})"
                     + (" — high: these maps partly trace the input or the architecture, "
                        "not only what the model learned" if rho >= 0.5 else "")
                     + f'<br><span class="meta">{e(str(check.get("what", "")))}</span></div>')  # fmt: skip
    else:
        parts.append(_missing("attributions.json records no randomisation check"))
    root = run_dir.resolve()
    for entry in doc.get("classes") or []:
        if not isinstance(entry, dict):
            continue
        samples = [x for x in entry.get("samples") or [] if isinstance(x, dict)]
        parts.append(f"<h3>true class {e(str(entry.get('class')))}</h3>")
        figure = entry.get("figure")
        path = (run_dir / str(figure)).resolve() if figure else None
        if path is not None and path.is_relative_to(root) and path.is_file():
            parts.append(_img(path, f"attribution maps of class {entry.get('class')}"))
        elif not samples:
            parts.append(_missing("no test sample of this class"))
        else:
            parts.append(_missing(f"figure {figure!s} is missing from the run folder"))
        if samples:
            rows = [[e(str(x.get("sample_id"))), e(str(x.get("y_pred"))), _num(x.get("p_pred")),
                     "correct" if x.get("correct") else "<b>wrong</b>"] for x in samples]  # fmt: skip
            parts.append(_table(["sample", "predicted", "p", ""], rows))
    return "".join(parts)


def _figures_section(run_dir: Path, figures: Any, problem: str | None) -> str:
    """The task's own example figures (``figures.json``: png and caption of each)."""
    if not isinstance(figures, list):
        return _missing(str(problem or "figures.json is not a list"))
    parts = []
    for f in figures:
        png = run_dir / str(f.get("png", "")) if isinstance(f, dict) else None
        if png is None or not png.is_file():
            parts.append(_missing(f"figure {f!r} is missing"))
            continue
        parts.append(f'<figure>{_img(png, str(f.get("caption", "")))}'
                     f'<figcaption>{e(str(f.get("caption", "")))}</figcaption></figure>')  # fmt: skip
    return "".join(parts) or _missing("no example figures were drawn")


def _stage_section(stage: dict[str, Any]) -> str:
    """A model's second stage (fitted after training): the model module's own description
    of its summary when it registered one, else the summary as a table."""
    from medtorch.models.registry import stage_description

    on = str(stage.get("fitted_on", "train"))
    text = stage_description(stage)
    body = (f"<p>{e(text)}</p>" if text is not None else
            _table(["setting", "value"], [[e(k), _num(v)] for k, v in _flatten(stage)]))  # fmt: skip
    return (
        f"<h3>second stage (fitted after training, on the {e(on)} split(s); never test)</h3>" + body
    )


def _predictions(
    rows: list[dict[str, str]], names_hint: list[str] | None
) -> tuple[Any, Any, list[str]]:
    pcols = [c for c in rows[0] if c.startswith("p_")]
    if len(pcols) < 2:
        raise ValueError(
            "expected columns p_<class> for at least 2 classes in predictions_test.csv"
        )
    names = [c[2:] for c in pcols]
    if names_hint and len(names_hint) == len(names):
        names = list(names_hint)
    proba = np.array([[float(r[c]) for c in pcols] for r in rows])
    lookup = {n: i for i, n in enumerate(names)} | {c[2:]: i for i, c in enumerate(pcols)}
    y = np.array([lookup[r["y_true"]] if r["y_true"] in lookup else int(float(r["y_true"]))
                  for r in rows])  # fmt: skip
    return y, proba, names


def write_report(run_dir: str | Path) -> Path:
    """Draw the plots into ``run_dir`` and write ``run_dir/report.html``; return its path.

    >>> # write_report(Path("runs/my_run"))  -> Path("runs/my_run/report.html")
    """
    run_dir = Path(run_dir)
    cfg_pair, cfg_problem = _load(run_dir / "config.yaml", "yaml")
    cfg_text, cfg = cfg_pair if cfg_pair else ("", {})
    cfg = cfg if isinstance(cfg, dict) else {}
    splits, splits_problem = _load(run_dir / "splits.json", "json")
    cohort, cohort_problem = _load(run_dir / "cohort.json", "json")
    metrics, metrics_problem = _load(run_dir / "metrics.json", "json")
    history, history_problem = _load(run_dir / "history.csv", "csv")
    preds, preds_problem = _load(run_dir / "predictions_test.csv", "csv")
    test = metrics.get("test") if isinstance(metrics, dict) else None
    names_hint = test.get("class_names") if isinstance(test, dict) else None

    name = str(cfg.get("name") or run_dir.name)
    trainer = cfg.get("trainer") if isinstance(cfg.get("trainer"), dict) else {}
    body = [f"<h1>{e(name)}</h1>",
            f'<p class="meta">run folder {e(run_dir.name)} · report generated '
            f"{dt.datetime.now():%Y-%m-%d %H:%M} · medtorch {e(medtorch.__version__)}</p>"]  # fmt: skip
    if cfg.get("description"):
        body.append(f"<p>{e(str(cfg['description']))}</p>")
    body += ["<h2>Cohort</h2>", _cohort_section(cohort, cohort_problem)]
    body += ["<h2>Split</h2>", _split_section(splits, splits_problem)]
    body += ["<h2>Metrics</h2>", _metrics_section(metrics, metrics_problem)]

    body.append("<h2>Confusion matrix (test)</h2>")
    if isinstance(test, dict) and test.get("confusion_matrix") and test.get("class_names"):
        body.append(_plot(plots.plot_confusion, test["confusion_matrix"], test["class_names"],
                          run_dir / "confusion_matrix.png", alt="confusion matrix"))  # fmt: skip
    else:
        body.append(_missing(metrics_problem or "metrics.json has no test confusion matrix"))

    body.append("<h2>ROC, precision-recall and calibration (test)</h2>")
    if preds is None:
        body.append(_missing(str(preds_problem)))
    else:
        try:
            y, proba, names = _predictions(preds, names_hint)
        except (KeyError, ValueError) as exc:
            body.append(_missing(f"could not read predictions_test.csv: {exc}"))
        else:
            body.append(_plot(plots.plot_roc_pr, y, proba, names, run_dir / "roc.png",
                              run_dir / "pr.png", alt="ROC and PR curves"))  # fmt: skip
            body.append(_plot(plots.plot_reliability, y, proba, run_dir / "reliability.png",
                              alt="reliability diagram"))  # fmt: skip

    body.append("<h2>Learning curves</h2>")
    if history is None:
        body.append(_missing(str(history_problem)))
    else:
        monitor = trainer.get("monitor") if isinstance(trainer, dict) else None
        kept = metrics.get("best_epoch") if isinstance(metrics, dict) else None
        body.append(_plot(plots.plot_learning_curves, run_dir / "history.csv",
                          run_dir / "learning_curves.png", monitor,
                          kept if isinstance(kept, int) else None, alt="learning curves"))  # fmt: skip

    explained, explained_problem = _load(run_dir / "explanations.json", "json")
    if explained is not None or (run_dir / "explanations.json").exists():
        body.append("<h2>Explanations (example test samples)</h2>")
        body.append(_explanations_section(explained, explained_problem))

    attributed, attributed_problem = _load(run_dir / "attributions.json", "json")
    if attributed is not None or (run_dir / "attributions.json").exists():
        body.append("<h2>Attribution maps: where the model looks (example test samples)</h2>")
        body.append(_attributions_section(run_dir, attributed, attributed_problem))

    figures, figures_problem = _load(run_dir / "figures.json", "json")
    if figures is not None or (run_dir / "figures.json").exists():
        body.append("<h2>Example test samples</h2>")
        body.append(_figures_section(run_dir, figures, figures_problem))

    body.append("<h2>Resolved config</h2>")
    body.append(f"<pre>{e(cfg_text)}</pre>" if cfg_text else _missing(str(cfg_problem)))
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(name)} · medtorch report</title><style>{CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")  # fmt: skip
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
