"""tsad trainer: datasets, training, threshold calibration, evaluation and reports; writes model bundles."""
