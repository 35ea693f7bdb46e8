"""Samples -> arrays (EHR_CONTRACT): vocabulary fitted on training subjects, shapes, values."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from ehr_synth import admission, at, events
from medtorch.ehr import CodeVocab, build_samples, read_mimic3
from medtorch.errors import ConfigError, DataError


def _visit_events() -> pl.DataFrame:
    rows = []
    for s in (1, 2, 3):
        rows += admission(
            s, s * 10 + 1, at(0), at(2), ["DIAGNOSIS//ICD9CM//4019", "MEDICATION//Aspirin"]
        )
        rows += admission(s, s * 10 + 2, at(10), at(12), ["DIAGNOSIS//ICD9CM//4280"], died=(s == 2))
        rows += admission(s, s * 10 + 3, at(20), at(22), ["DIAGNOSIS//ICD9CM//4280"])
    rows += admission(3, 34, at(30), at(31), [f"DIAGNOSIS//ICD9CM//ONLY3_{i}" for i in range(3)])
    rows += admission(3, 35, at(40), at(41), ["DIAGNOSIS//ICD9CM//4019"])
    return events(rows)


def test_visit_arrays_follow_the_contract():
    s = build_samples(
        _visit_events(), "mortality_next_visit", {"max_visits": 3, "max_codes_per_visit": 2}
    )
    train = s.by_subjects([1, 2])
    vocab = CodeVocab.fit(train)
    # subject 1: two input visits (4019 + Aspirin, 4280); subject 2 dies in its second admission,
    # so its only sample sees the first visit
    assert vocab.codes == [
        "DIAGNOSIS//ICD9CM//4019",
        "MEDICATION//Aspirin",
        "DIAGNOSIS//ICD9CM//4280",
    ]
    arr = vocab.transform(s)
    x, t = arr.inputs["x"], arr.inputs["t"]
    assert list(arr.inputs) == ["x", "t"]
    assert x.dtype == np.int64 and t.dtype == np.float32
    assert x.shape == (len(s), 3, 2) and s.dims == {"n_visits": 3, "n_codes": 2}
    assert arr.meta["vocab_size"] == vocab.vocab_size == 5
    mask = x[:, :, 0] != 0
    # left-aligned visits: once a padding visit starts, the rest are padding
    assert all(np.all(np.diff(m.astype(int)) <= 0) for m in mask)
    assert np.all(t[~mask] == 0) and np.all(t[mask] >= 0)
    # subject 3's fourth admission has three codes unseen in training: unknown (1), truncated to 2
    sid = list(arr.sample_ids).index("3:2150-02-01T08:00:00")
    last = mask[sid].sum() - 1
    assert x[sid, last].tolist() == [1, 1]
    assert (
        s.cohort["truncation"]["visits with codes beyond max_codes_per_visit (later codes dropped)"]
        >= 1
    )
    assert s.cohort["truncation"]["samples with visits beyond max_visits (oldest dropped)"] == 1
    # the most recent visits are kept: subject 3 at its fourth discharge sees visits 2..4
    assert t[sid, :3].tolist() == [21.0, 11.0, 1.0]
    assert arr.groups.tolist() == [str(v) for v in s.frame["subject_id"]]
    assert arr.y.dtype == np.int64 and arr.class_names == ["survived", "died"]
    assert arr.y.tolist() == s.frame["boolean_value"].cast(int).to_list()
    ds = arr.to_array_dataset()
    assert len(ds) == len(s) and ds.n_classes == 2


def test_min_count_and_json_round_trip(tmp_path):
    s = build_samples(_visit_events(), "mortality_next_visit")
    vocab = CodeVocab.fit(s.by_subjects([1, 2, 3]), min_count=3)
    # each of the three common codes is in 3 input visits; 4019 is repeated in 7 samples'
    # histories, but a code counts once per visit
    assert vocab.codes == [
        "DIAGNOSIS//ICD9CM//4019",
        "DIAGNOSIS//ICD9CM//4280",
        "MEDICATION//Aspirin",
    ]
    assert CodeVocab.fit(s, min_count=4).codes == []
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(vocab.to_dict()))
    again = CodeVocab.from_dict(json.loads(path.read_text()))
    a, b = vocab.transform(s), again.transform(s)
    assert np.array_equal(a.inputs["x"], b.inputs["x"]) and np.array_equal(
        a.inputs["t"], b.inputs["t"]
    )
    with pytest.raises(ConfigError, match="min_count"):
        CodeVocab.fit(s, min_count=0)
    with pytest.raises(DataError, match="training split is empty"):
        CodeVocab.fit(s.by_subjects([]))
    with pytest.raises(DataError, match="format"):
        CodeVocab.from_dict({**vocab.to_dict(), "format": 99})


def test_event_values_are_standardised_on_training_subjects():
    rows = []
    values = {1: [1.0, 3.0], 2: [5.0, 7.0], 3: [100.0, 100.0]}
    for s, (v1, v2) in values.items():
        rows += admission(s, s, at(0), at(4), ["DIAGNOSIS//ICD9CM//4019"])
        rows += [
            (s, at(hours=2), "LAB//50912", v1, s),
            (s, at(hours=5), "LAB//50912", v2, s),
            (s, at(hours=6), "MEDICATION//Aspirin", None, s),
        ]
    s = build_samples(events(rows), "in_hospital_mortality_48h")
    vocab = CodeVocab.fit(s.by_subjects([1, 2]))
    mean, sd = np.mean([1, 3, 5, 7]), np.std([1, 3, 5, 7], ddof=1)
    assert vocab.value_stats is not None
    assert vocab.value_stats["LAB//50912"] == pytest.approx((mean, sd))
    arr = vocab.transform(s)
    assert list(arr.inputs) == ["x", "t", "v"]
    x, t, v = arr.inputs["x"], arr.inputs["t"], arr.inputs["v"]
    assert x.shape == t.shape == v.shape == (3, 3)
    assert t[0].tolist() == [2.0, 5.0, 6.0]
    assert v[2, :2] == pytest.approx([(100 - mean) / sd] * 2)
    assert v[0, 2] == 0.0  # no value
    lab = vocab.codes.index("LAB//50912") + 2
    assert x[:, 0].tolist() == [lab] * 3


@pytest.mark.realdata
def test_mimic3_demo_arrays(data_dir):
    ev = read_mimic3(
        data_dir / "mimic3_demo", tables=["DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS"]
    )
    s = build_samples(
        ev, "mortality_next_visit", {"code_prefixes": ["DIAGNOSIS", "PROCEDURE", "MEDICATION"]}
    )
    subjects = np.unique(s.subject_ids)
    train = s.by_subjects(subjects[: len(subjects) // 2])
    vocab = CodeVocab.fit(train)
    arr = vocab.transform(s)
    x = arr.inputs["x"]
    assert x.shape[0] == len(s) == 29 and x.max() < vocab.vocab_size
    assert (x[:, 0, 0] != 0).all()  # every sample has a first visit with a code
    test_rows = ~np.isin(s.subject_ids, subjects[: len(subjects) // 2])
    assert (x[test_rows] == 1).any()  # codes only seen in held-out subjects map to unknown
    assert not (x[~test_rows] == 1).any()
