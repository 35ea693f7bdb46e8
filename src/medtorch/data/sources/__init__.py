"""Readers, one module per source format (uci_seizure, svmlight, wfdb...)."""
