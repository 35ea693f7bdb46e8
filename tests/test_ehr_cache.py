"""The Parquet cache of medtorch.ehr: hit, rebuild on a changed source/config/version."""

from __future__ import annotations

import json
import os

import polars as pl

from ehr_synth import small_mimic3, write_mimic3
from medtorch.ehr import build_samples, load_events, load_samples, read_mimic3
from medtorch.ehr import schema as S


def test_second_call_reads_the_cache(tmp_path):
    src = write_mimic3(tmp_path / "m3")
    cache = tmp_path / "cache"
    ev1, info1 = load_events("mimic3", src, cache_dir=cache)
    ev2, info2 = load_events("mimic3", src, cache_dir=cache)
    assert not info1["cache_hit"] and info2["cache_hit"]
    assert ev1.equals(ev2) and ev1.equals(read_mimic3(src))
    assert info2["report"]["admissions"] == 3
    # nothing is written into the (possibly read-only) data folder
    assert sorted(p.name for p in src.iterdir()) == sorted(f"{t}.csv.gz" for t in small_mimic3())


def test_changed_source_or_config_rebuilds(tmp_path):
    src = write_mimic3(tmp_path / "m3")
    cache = tmp_path / "cache"
    load_events("mimic3", src, cache_dir=cache)
    _, info = load_events("mimic3", src, {"drug_code": "ndc"}, cache_dir=cache)
    assert not info["cache_hit"]
    tables = small_mimic3()
    tables["ADMISSIONS"][2][4] = "2150-03-09 10:00:00"  # a longer stay
    write_mimic3(src, tables)
    st = (src / "ADMISSIONS.csv.gz").stat()
    os.utime(src / "ADMISSIONS.csv.gz", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ev, info = load_events("mimic3", src, cache_dir=cache)
    assert not info["cache_hit"]
    dis = ev.filter((pl.col("code") == "HOSPITAL_DISCHARGE") & (pl.col("hadm_id") == 1003))["time"]
    assert str(dis[0]) == "2150-03-09 10:00:00"
    _, info = load_events("mimic3", src, cache_dir=cache)
    assert info["cache_hit"]


def test_an_older_cache_version_is_rebuilt_never_read(tmp_path, monkeypatch):
    src = write_mimic3(tmp_path / "m3")
    cache = tmp_path / "cache"
    ev, info = load_events("mimic3", src, cache_dir=cache)
    entry = next(cache.glob("events-mimic3-*"))
    # an entry under the same key that claims an older version, with poisoned events
    meta = json.loads((entry / "meta.json").read_text())
    meta["version"] = S.EHR_CACHE_VERSION - 1
    (entry / "meta.json").write_text(json.dumps(meta))
    ev.head(1).write_parquet(entry / "events.parquet")
    again, info = load_events("mimic3", src, cache_dir=cache)
    assert not info["cache_hit"] and again.equals(ev)
    # a new medtorch version gives a new key: rebuilt as well
    monkeypatch.setattr(S, "EHR_CACHE_VERSION", S.EHR_CACHE_VERSION + 1)
    _, info = load_events("mimic3", src, cache_dir=cache)
    assert not info["cache_hit"]
    _, info = load_events("mimic3", src, cache_dir=cache)
    assert info["cache_hit"]


def test_samples_are_cached_with_their_cohort(tmp_path):
    src = write_mimic3(tmp_path / "m3")
    cache = tmp_path / "cache"
    first = load_samples("mimic3", src, "readmission_30d", {"window_days": 60}, cache_dir=cache)
    second = load_samples("mimic3", src, "readmission_30d", {"window_days": 60}, cache_dir=cache)
    assert not first.cohort["cache_hit"] and second.cohort["cache_hit"]
    direct = build_samples(read_mimic3(src), "readmission_30d", {"window_days": 60})
    assert second.frame.equals(direct.frame) and second.dims == direct.dims
    assert second.cohort["exclusions"] == direct.cohort["exclusions"]
    other = load_samples("mimic3", src, "readmission_30d", {"window_days": 5}, cache_dir=cache)
    assert not other.cohort["cache_hit"]
