"""ECG inference on any WFDB record: beat classes (AAMI) and AF episodes."""

from medtorch.ecg.predict import predict_record, write_predictions_csv

__all__ = ["predict_record", "write_predictions_csv"]
