"""Processing and histograms: the coffea Runner, histogram definitions and fills, residual metrics, anomaly scores and evaluation."""
