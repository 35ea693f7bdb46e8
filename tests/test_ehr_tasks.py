"""Tasks of medtorch.ehr on tiny synthetic event tables (and the real demos)."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from ehr_synth import admission, at, events
from medtorch.ehr import (
    TASKS,
    CodeVocab,
    build_labels,
    build_samples,
    read_event_table,
    read_mimic3,
    read_mimic4,
)
from medtorch.errors import ConfigError, DataError


def _flow(cohort: dict) -> dict[str, int]:
    return {e["reason"]: e["count"] for e in cohort["exclusions"]}


def _readmission_events() -> pl.DataFrame:
    rows = []
    # subject 1: discharge day 2, next admission 9.25 days later, then nothing
    rows += admission(1, 11, at(0), at(2), ["DIAGNOSIS//ICD9CM//4019"])
    rows += admission(1, 12, at(11.25), at(13), ["DIAGNOSIS//ICD9CM//4280"])
    # subject 2: discharged, dies 8 days later without readmission
    rows += admission(2, 21, at(0), at(2), ["DIAGNOSIS//ICD9CM//4019"])
    rows.append((2, at(10), "MEDS_DEATH"))
    # subject 3: dies in hospital
    rows += admission(3, 31, at(0), at(4), ["DIAGNOSIS//ICD9CM//0389"], died=True)
    # subject 4: discharged, a clinic lab 40 days later (observed, not readmitted)
    rows += admission(4, 41, at(0), at(3), ["DIAGNOSIS//ICD9CM//4019"])
    rows.append((4, at(43), "LAB//50912", 1.0))
    return events(rows)


def test_readmission_window_boundary_and_censoring():
    ev = _readmission_events()
    lab15, flow15 = build_labels(ev, "readmission_30d", {"window_days": 15})
    lab5, _ = build_labels(ev, "readmission_30d", {"window_days": 5})
    first = (pl.col("subject_id") == 1) & (pl.col("hadm_id") == 11)
    assert lab15.filter(first)["boolean_value"].to_list() == [True]  # 9.25-day gap, window 15
    assert lab5.filter(first)["boolean_value"].to_list() == [False]  # 9.25-day gap, window 5
    f15 = _flow(flow15)
    assert f15["died during the index admission"] == 1
    assert f15["died within 15 days of discharge without readmission"] == 1  # subject 2
    # subject 1's last admission has no follow-up after its discharge
    assert f15["less than 15 days of follow-up and no readmission (censored)"] == 1
    assert lab15.filter(pl.col("subject_id") == 4)["boolean_value"].to_list() == [False]
    assert flow15["label_balance"] == {"no readmission": 1, "readmitted": 1}
    assert lab15["prediction_time"].to_list() == [at(2), at(3)]
    _, flow60 = build_labels(ev, "readmission_30d", {"window_days": 60})
    assert (
        _flow(flow60)["less than 60 days of follow-up and no readmission (censored)"] == 2
    )  # subjects 1 (2nd), 4
    with pytest.raises(ConfigError, match="window_days"):
        build_labels(ev, "readmission_30d", {"window_days": 0})
    with pytest.raises(ConfigError, match="window_dayz"):
        build_labels(ev, "readmission_30d", {"window_dayz": 3})


def test_mortality_next_visit_and_next_visit_diagnosis():
    rows = []
    rows += admission(4, 41, at(0), at(3), ["DIAGNOSIS//ICD9CM//4019", "MEDICATION//Aspirin"])
    rows += admission(
        4, 42, at(10), at(12), ["DIAGNOSIS//ICD9CM//42830", "DIAGNOSIS//ICD9CM//4280"]
    )
    rows += admission(4, 43, at(20), at(25), ["DIAGNOSIS//ICD10CM//E119"], died=True)
    rows += admission(5, 51, at(0), at(1), ["DIAGNOSIS//ICD9CM//V707"])
    ev = events(rows)
    s = build_samples(ev, "mortality_next_visit")
    assert s.frame["boolean_value"].to_list() == [False, True]
    assert s.frame["prediction_time"].to_list() == [at(3), at(12)]
    assert s.frame["sample_id"].to_list() == ["4:2150-01-04T08:00:00", "4:2150-01-13T08:00:00"]
    # the second sample sees both visits, oldest first, and nothing of the third
    assert s.frame["visit_codes"][1].to_list() == [
        ["DIAGNOSIS//ICD9CM//4019", "MEDICATION//Aspirin"],
        ["DIAGNOSIS//ICD9CM//4280", "DIAGNOSIS//ICD9CM//42830"],
    ]
    assert s.frame["visit_days"][1].to_list() == [12.0, 2.0]
    assert s.cohort["label_balance"] == {"survived": 1, "died": 1}
    nd = build_samples(ev, "next_visit_diagnosis")
    assert nd.frame["label_codes"].to_list() == [["ICD9CM//428"], ["ICD10CM//E11"]]
    vocab = CodeVocab.fit(nd.subset([0]))
    assert vocab.label_names == ["ICD9CM//428"]  # label names from the training samples only
    y = vocab.transform(nd).y
    assert y.dtype.name == "float32" and y.tolist() == [[1.0], [0.0]]


def test_in_hospital_mortality_48h_never_sees_after_hour_48():
    rows = [(7, None, "GENDER//F")]
    rows += admission(7, 70, at(-30), at(-29), ["DIAGNOSIS//ICD9CM//4019"])  # earlier admission
    rows += admission(7, 71, at(0), at(5), ["DIAGNOSIS//ICD9CM//PLANTDX"], died=True)
    rows += [
        (7, at(hours=1), "LAB//50912", 2.0, 71),
        (7, at(hours=47.9), "LAB//50912", 4.0, 71),
        (7, at(hours=49), "LAB//PLANTED", 9.0, 71),
        (7, at(hours=48, days=0) + (at(hours=0.001) - at()), "MEDICATION//PLANTED2", None, 71),
    ]
    # exactly 48 h: its discharge-time diagnosis sits on the cut and must not be seen
    rows += admission(8, 80, at(0), at(hours=48), ["DIAGNOSIS//ICD9CM//LEAK48"])
    rows.append((8, at(hours=2), "LAB//50912", 3.0, 80))
    rows += admission(9, 90, at(0), at(hours=20), ["DIAGNOSIS//ICD9CM//4019"])  # too short
    ev = events(rows)
    s = build_samples(ev, "in_hospital_mortality_48h")
    seen = set(s.frame["event_codes"].explode().to_list())
    assert "LAB//PLANTED" not in seen and "MEDICATION//PLANTED2" not in seen
    assert "DIAGNOSIS//ICD9CM//PLANTDX" not in seen and "DIAGNOSIS//ICD9CM//LEAK48" not in seen
    assert "DIAGNOSIS//ICD9CM//4019" in seen  # earlier admissions' codes are inputs
    assert s.frame["boolean_value"].to_list() == [True, False]
    first = s.frame.row(0, named=True)
    assert first["event_codes"][0] == "GENDER//F" and first["event_hours"][0] == 0.0
    assert max(first["event_hours"]) <= 48.0 and min(first["event_hours"]) == pytest.approx(
        -29 * 24
    )
    assert _flow(s.cohort)["stay shorter than 48 h"] == 2  # the earlier admission and subject 9
    arrays = CodeVocab.fit(s).transform(s)
    assert arrays.inputs["t"].max() <= 48.0
    no_hist = build_samples(
        ev, "in_hospital_mortality_48h", {"include_history": False, "include_static": False}
    )
    assert "DIAGNOSIS//ICD9CM//4019" not in set(no_hist.frame["event_codes"].explode().to_list())
    assert min(no_hist.frame["event_hours"][0]) >= 0
    ls = build_samples(ev, "long_stay_7d", {"los_days": 4})
    assert ls.frame["boolean_value"].to_list() == [True, False]


def test_unreadable_labels_are_counted_exclusions():
    rows = []
    rows += admission(
        1, 11, at(0), at(-1), ["DIAGNOSIS//ICD9CM//4019"]
    )  # discharge before admission
    rows += admission(1, 12, at(10), at(12), ["DIAGNOSIS//ICD9CM//4019"])
    rows += admission(2, 21, at(0), None)  # no discharge time
    rows += admission(2, 22, at(10), at(12), ["DIAGNOSIS//ICD9CM//4019"])
    rows.append((3, None, "GENDER//M"))  # a patient with no admissions
    dup = admission(4, 41, at(0), at(3), ["DIAGNOSIS//ICD9CM//4019"])
    rows += dup + dup[:2]  # duplicated admission and discharge rows
    rows += admission(4, 42, at(10), at(12), ["DIAGNOSIS//ICD9CM//4019"])
    labels, flow = build_labels(events(rows), "mortality_next_visit")
    f = _flow(flow)
    assert f["subjects without any admission"] == 1
    assert f["unusable admission: discharge before admission"] == 1
    assert f["unusable admission: admission without a discharge time"] == 1
    assert f["duplicate admission/discharge rows removed"] == 2
    assert f["index admission unusable"] == 2
    assert labels["subject_id"].to_list() == [4] and flow["subjects_in"] == 4


def test_duplicate_admission_ids_with_different_times_are_an_error():
    rows = [*admission(1, 11, at(0), at(2)), (1, at(1), "HOSPITAL_ADMISSION", None, 11)]
    with pytest.raises(DataError, match="one HOSPITAL_ADMISSION per hadm_id, got 2 for hadm_id 11"):
        build_labels(events(rows), "mortality_next_visit")


def test_admissions_without_hadm_id_are_paired_by_time():
    rows = []
    rows += admission(1, None, at(0), at(2), ["DIAGNOSIS//ICD//9//4019"])
    rows += admission(
        1, None, at(5), None
    )  # its discharge is missing: must not borrow the next one
    rows += admission(1, None, at(9), at(11), ["DIAGNOSIS//ICD//10//E119"])
    adm_rows = [(s, t, c, v, None) for s, t, c, v, _ in rows]
    labels, flow = build_labels(events(adm_rows), "readmission_30d", {"window_days": 10})
    assert _flow(flow)["unusable admission: admission without a discharge time"] == 1
    assert labels["prediction_time"].to_list() == [at(2)]
    assert labels["boolean_value"].to_list() == [True]


def test_user_labels_use_only_events_up_to_prediction_time():
    rows = admission(7, 71, at(0), at(5), ["DIAGNOSIS//ICD9CM//4019"])
    rows += [(7, at(hours=10), "LAB//A", 1.0, 71), (7, at(hours=30), "LAB//LATER", 2.0, 71)]
    ev = events(rows)
    labels = pl.DataFrame(
        {
            "subject_id": [7, 999],
            "prediction_time": [at(hours=20)] * 2,
            "boolean_value": [True, False],
        }
    )
    s = build_samples(ev, "labels", labels=labels, params={"representation": "events", "hours": 24})
    assert s.frame["event_codes"].to_list() == [["LAB//A"]]
    assert _flow(s.cohort)["subject not in the event table"] == 1
    sv = build_samples(ev, "labels", labels=labels)
    assert sv.frame["visit_codes"].to_list() == [[["LAB//A"]]]
    text = labels.with_columns(pl.col("boolean_value").cast(pl.String))
    with pytest.raises(DataError, match="boolean_value of type Boolean, got String"):
        build_samples(ev, "labels", labels=text)
    with pytest.raises(DataError, match="'prediction_time'"):
        build_samples(ev, "labels", labels=labels.drop("prediction_time"))


def test_unknown_task_suggests_the_close_name():
    with pytest.raises(ConfigError, match="did you mean readmission_30d"):
        build_labels(events(admission(1, 1, at(0), at(1))), "readmision_30d")


def _check_flow(s) -> None:
    assert s.cohort["samples"] == len(s) > 0
    if s.label_type == "binary":
        assert sum(s.cohort["label_balance"].values()) == len(s)
    times = s.frame["prediction_time"]
    assert times.null_count() == 0


@pytest.mark.realdata
@pytest.mark.parametrize("source", ["mimic3", "mimic4", "mimic4_meds"])
def test_every_task_on_the_demos(data_dir, source):
    if source == "mimic3":
        ev = read_mimic3(data_dir / "mimic3_demo")
    elif source == "mimic4":
        ev = read_mimic4(data_dir / "mimic4_demo")
    else:
        ev = read_event_table(
            data_dir / "mimic4_demo_meds" / "mimic_iv_demo_meds_events.parquet", {"value": "value"}
        )
    for task in TASKS:
        s = build_samples(ev, task)
        _check_flow(s)
        if s.kind == "events":
            # no input is later than the cut; the index admission's discharge codes never appear
            assert s.frame.select(pl.col("event_hours").list.max().max()).item() <= 48.0
    if source == "mimic3":
        s = build_samples(ev, "mortality_next_visit")
        # independent count: admissions followed by another admission of the same subject
        adm = pl.read_csv(data_dir / "mimic3_demo" / "ADMISSIONS.csv.gz", infer_schema_length=0)
        expected = adm.height - adm["SUBJECT_ID"].n_unique()
        assert len(s) == expected == 29
        assert s.frame["prediction_time"].dtype == pl.Datetime("us") and isinstance(
            s.frame["prediction_time"][0], datetime
        )
