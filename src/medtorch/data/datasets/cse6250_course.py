"""The lab's per-patient EHR feature vectors (patients.svmlight)."""

from medtorch.data.registry import DatasetInfo, files_from_checksums, register_dataset

register_dataset(
    DatasetInfo(
        "cse6250_course",
        "cse6250_course",
        "Georgia Tech CSE6250 DL lab: patients.svmlight",
        "836 patients x 3179 sparse features (svmlight, label 1 = 336 patients), output of the "
        "course's Spark pipeline on the bootcamp sample events",
        "none stated (course material; test fixture only)",
        ("Georgia Tech CSE6250 Big Data for Healthcare, DL lab (1_FeedforwardNet)",),
        "https://github.com/ast0414/CSE6250BDH-LAB-DL",
        files_from_checksums("cse6250_course"),
        manual_download="no public download: copy patients.svmlight from the CSE6250 DL lab "
        "repository (the fork srjalan/CSE6250BDH-LAB-DL carries it), gzip it",
        rank=1,
    )
)
