"""Datasets in the formats other code reads: a run's episodes out, someone else's demonstrations in."""
