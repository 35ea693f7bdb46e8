"""Train/valid/test splits, named protocols, and the leakage audit.

``make_split(ds, cfg)`` returns sorted int64 row indices for ``train``, ``valid`` and
``test``. Grouped methods (``grouped``, ``by_recording``, ``by_patient``, ``by_record``,
``by_lesion``, ``grouped_kfold``) keep every group (``ds.groups``) on one side;
``describe_split`` writes the splits.json content and, for grouped methods, fails the run
through :func:`audit_leakage` when a group appears in two partitions.

>>> import numpy as np
>>> from medtorch.config import SplitConfig
>>> from medtorch.data.dataset import ArrayDataset
>>> ds = ArrayDataset({"x": np.zeros((100, 2), "float32")}, np.arange(100) % 2,
...                   (np.arange(100) // 4).astype(str), ["a", "b"])
>>> {k: len(v) for k, v in make_split(ds, SplitConfig(method="random")).items()}
{'train': 64, 'valid': 16, 'test': 20}
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from medtorch.config import SplitConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.errors import ConfigError, SplitError

PARTS = ("train", "valid", "test")
Split = dict[str, np.ndarray]
ProtocolFn = Callable[[ArrayDataset, SplitConfig], Split]

_PROTOCOLS: dict[str, tuple[ProtocolFn, bool]] = {}
_PROTOCOL_PARAMS: dict[str, tuple[str, ...]] = {}


def register_protocol(
    name: str, grouped: bool = True, params: tuple[str, ...] = ()
) -> Callable[[ProtocolFn], ProtocolFn]:
    """Register a named split ``fn(ds, cfg) -> {"train", "valid", "test"}`` (``split.protocol``).

    ``grouped=True`` (default) means the protocol promises group-disjoint partitions, so
    the leakage audit is run on it like on any grouped method. ``params``: the keys of
    ``split.params`` it reads (``cfg.params``); any other key is refused.
    """

    def deco(fn: ProtocolFn) -> ProtocolFn:
        _PROTOCOLS[name] = (fn, grouped)
        _PROTOCOL_PARAMS[name] = tuple(params)
        return fn

    return deco


def list_protocols() -> list[str]:
    _discover_protocols()
    return sorted(_PROTOCOLS)


def _discover_protocols() -> None:
    # protocols are registered by the task modules that need them
    from medtorch.data.tasks.registry import list_tasks

    list_tasks()


def _get_protocol(name: str | None) -> tuple[ProtocolFn, bool]:
    _discover_protocols()
    if name is None or name not in _PROTOCOLS:
        close = difflib.get_close_matches(str(name), list(_PROTOCOLS), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"expected a registered split protocol, got {name!r} in split.protocol; "
            f"{hint}choose one of: {', '.join(list_protocols()) or '(none registered)'}"
        )
    return _PROTOCOLS[name]


def _two_stage(
    items: np.ndarray, ratios: tuple[float, float, float], seed: int, strat: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lab protocol: hold out test, then valid from the rest (sklearn, twice)."""
    r_train, r_valid, r_test = ratios
    if min(ratios) <= 0:
        return (
            items if r_train > 0 else items[:0],
            items if r_valid > 0 else items[:0],
            items if r_test > 0 else items[:0],
        )  # reported as an empty partition below
    # rounding keeps 0.16 / 0.8 from becoming 0.2000000001 -> one extra row via ceil
    valid_frac = round(r_valid / (r_train + r_valid), 12)
    try:
        rest, test = train_test_split(
            items, test_size=round(r_test, 12), random_state=seed, stratify=strat
        )
        strat_rest = None if strat is None else strat[np.searchsorted(items, rest)]
        train, valid = train_test_split(
            rest, test_size=valid_frac, random_state=seed, stratify=strat_rest
        )
    except ValueError as exc:
        raise SplitError(
            f"expected enough rows to split with ratios {list(ratios)}, got "
            f"{len(items)} ({exc}) in split.ratios; use larger ratios or a "
            "non-stratified method"
        ) from None
    return train, valid, test


def _group_labels(ds: ArrayDataset, uniq: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Most frequent label of each group (stratifies grouped splits by group label)."""
    counts = np.zeros((len(uniq), max(ds.n_classes, 1)), dtype=np.int64)
    if ds.strata is None:  # multi-label: groups are not stratified
        return np.zeros(len(uniq), dtype=np.int64)
    np.add.at(counts, (inverse, ds.y), 1)
    return counts.argmax(axis=1)


def _grouped(ds: ArrayDataset, cfg: SplitConfig) -> Split:
    uniq, inverse = np.unique(ds.groups, return_inverse=True)
    gidx = np.arange(len(uniq))
    labels = _group_labels(ds, uniq, inverse)
    try:  # stratified by group label where every class has enough groups
        parts = _two_stage(gidx, cfg.ratios, cfg.seed, labels)
    except SplitError:
        parts = _two_stage(gidx, cfg.ratios, cfg.seed, None)
    return {name: np.flatnonzero(np.isin(inverse, p)) for name, p in zip(PARTS, parts)}


def _grouped_kfold(ds: ArrayDataset, cfg: SplitConfig) -> Split:
    n_groups = len(np.unique(ds.groups))
    if cfg.n_folds < 3 or cfg.n_folds > n_groups:
        raise ConfigError(
            f"expected 3 <= n_folds <= {n_groups} (number of groups), got "
            f"{cfg.n_folds} in split.n_folds; test, valid and train each need a fold"
        )
    if not 0 <= cfg.fold < cfg.n_folds:
        raise ConfigError(
            f"expected a fold in 0..{cfg.n_folds - 1}, got {cfg.fold} in split.fold; "
            "pick an existing fold"
        )
    kf = StratifiedGroupKFold(n_splits=cfg.n_folds, shuffle=True, random_state=cfg.seed)
    strata = ds.strata if ds.strata is not None else np.zeros(len(ds), dtype=np.int64)
    folds = [test for _, test in kf.split(np.zeros(len(ds)), strata, ds.groups)]
    test, valid = folds[cfg.fold], folds[(cfg.fold + 1) % cfg.n_folds]
    train = np.setdiff1d(np.arange(len(ds)), np.concatenate([test, valid]))
    return {"train": train, "valid": valid, "test": test}


def make_split(ds: ArrayDataset, cfg: SplitConfig) -> Split:
    """Split ``ds`` by ``cfg.method``; returns sorted int64 row indices per partition.

    random / stratified: sklearn ``train_test_split`` twice (test first, then valid from
    the rest) with ``random_state=cfg.seed``, so 0.64/0.16/0.20 of 11,500 rows gives
    7360/1840/2300. Grouped methods apply the ratios to groups. Any empty partition
    raises :class:`SplitError`.
    """
    n = len(ds)
    idx = np.arange(n)
    given = {k: v for k, v in cfg.params.items() if v is not None}
    if given and cfg.method != "protocol":
        key = next(iter(given))
        raise SplitError(
            f"expected split.params only with split.method=protocol, got method "
            f"{cfg.method!r} with {key} {given[key]}; set split.params.{key}=null "
            "or drop it"
        )
    if cfg.method == "random":
        split = dict(zip(PARTS, _two_stage(idx, cfg.ratios, cfg.seed, None)))
    elif cfg.method == "stratified":
        split = dict(zip(PARTS, _two_stage(idx, cfg.ratios, cfg.seed, ds.strata)))
    elif cfg.method == "grouped_kfold":
        split = _grouped_kfold(ds, cfg)
    elif cfg.method == "protocol":
        fn, _ = _get_protocol(cfg.protocol)
        accepted = _PROTOCOL_PARAMS.get(str(cfg.protocol), ())
        if bad := [k for k in cfg.params if k not in accepted]:
            raise ConfigError(
                f"expected parameters of protocol {cfg.protocol!r} "
                f"({', '.join(accepted) or 'none'}), got {bad[0]!r} in split.params; "
                "remove or rename it"
            )
        split = fn(ds, cfg)
    else:  # grouped aliases
        split = _grouped(ds, cfg)
    held = ds.meta.get("train_exclude_ids")
    if held and ds.sample_ids is not None:  # scored if tested on, never trained on
        train = np.asarray(split["train"], dtype=np.int64)
        split = {**split, "train": train[~np.isin(ds.sample_ids[train], held)]}
    out: Split = {}
    for name in PARTS:
        part = np.sort(np.asarray(split.get(name, []), dtype=np.int64))
        if len(part) == 0:
            what = f"protocol {cfg.protocol!r}" if cfg.method == "protocol" else f"{cfg.method!r}"
            raise SplitError(
                f"expected at least one row in {name!r}, got 0 rows after split {what} "
                f"(ratios {list(cfg.ratios)}, {n} rows, "
                f"{len(np.unique(ds.groups))} groups) in split.ratios; "
                f"give {name} a non-zero ratio or use more data"
            )
        if part.min() < 0 or part.max() >= n:
            raise SplitError(
                f"expected row indices in 0..{n - 1}, got {part.min()}..{part.max()} in "
                f"split partition {name!r}; the split protocol returned bad indices"
            )
        out[name] = part
    return out


def group_overlap(groups: np.ndarray, split: Split) -> dict[str, list[str]]:
    """Groups shared by each pair of partitions, e.g. {"train-test": [...], ...}."""
    groups = np.asarray(groups).astype(str)
    sets = {k: set(groups[v].tolist()) for k, v in split.items()}
    names = [p for p in PARTS if p in sets]
    return {
        f"{a}-{b}": sorted(sets[a] & sets[b]) for i, a in enumerate(names) for b in names[i + 1 :]
    }


def audit_leakage(groups: np.ndarray, split: Split) -> dict[str, int]:
    """Check that no group is in two partitions; returns overlap counts (all 0).

    Raises :class:`SplitError` listing up to 5 offending groups and their partitions.
    """
    overlap = group_overlap(groups, split)
    bad = {pair: g for pair, g in overlap.items() if g}
    if bad:
        shown = "; ".join(
            f"{pair}: {', '.join(g[:5])}{' ...' if len(g) > 5 else ''} ({len(g)} groups)"
            for pair, g in bad.items()
        )
        raise SplitError(
            f"expected every group in one partition, got groups in two partitions "
            f"({shown}) in the split; split by group (e.g. split.method=grouped)"
        )
    return {pair: 0 for pair in overlap}


def describe_split(ds: ArrayDataset, split: Split, cfg: SplitConfig) -> dict[str, Any]:
    """splits.json content: method, seed, ratios, per-partition counts and sample ids,
    group overlaps and the leakage audit (which fails the run for grouped methods)."""
    assert ds.sample_ids is not None
    grouped = cfg.grouped or (cfg.method == "protocol" and _get_protocol(cfg.protocol)[1])
    unit = str(ds.meta.get("group_unit", "group"))
    overlap = group_overlap(ds.groups, split)
    if grouped:
        audit_leakage(ds.groups, split)
        audit = "passed"
        note = f"grouped split: no {unit} appears in two partitions"
    else:
        audit = "not applicable: random split by rows"
        n_test_groups = len(np.unique(ds.groups[split["test"]]))
        k = len(overlap.get("train-test", []))
        note = (
            f"{cfg.method} split by rows: {k} of {n_test_groups} test {unit}s also have samples "
            f"in train; numbers are optimistic and not comparable with a by-{unit} split"
        )
        if not any(overlap.values()):
            # e.g. one row per patient: a split by rows is then a split by group, and audited so
            grouped = True
            audit = "passed"
            note = f"{cfg.method} split by rows, but no {unit} has rows in two partitions (audited)"
    if caveat := ds.meta.get("split_caveat"):  # what the data cannot tell, e.g. no patient ids
        note = f"{note}; {caveat}"
    partitions = {}
    for name in PARTS:
        sub = split[name]
        counts = (ds.y[sub].sum(0) if ds.multilabel
                  else np.bincount(ds.y[sub], minlength=ds.n_classes))  # fmt: skip
        partitions[name] = {
            "n": len(sub),
            "n_groups": len(np.unique(ds.groups[sub])),
            "class_counts": {c: int(k) for c, k in zip(ds.class_names, counts)},
            "sample_ids": ds.sample_ids[sub].astype(str).tolist(),
        }
    return {
        "method": cfg.method,
        "protocol": cfg.protocol,
        "params": cfg.params,
        "train_exclude_ids": len(ds.meta.get("train_exclude_ids") or []),
        "seed": cfg.seed,
        "ratios": list(cfg.ratios),
        "n_folds": cfg.n_folds if cfg.method == "grouped_kfold" else None,
        "fold": cfg.fold if cfg.method == "grouped_kfold" else None,
        "grouped": bool(grouped),
        "group_unit": unit,
        "partitions": partitions,
        "group_overlap": {pair: len(g) for pair, g in overlap.items()},
        "leakage_audit": audit,
        "leakage_note": note,
    }


def write_split(path: Path, info: dict[str, Any]) -> None:
    """Write ``describe_split`` output as JSON (splits.json)."""
    Path(path).write_text(json.dumps(info, indent=1) + "\n")
