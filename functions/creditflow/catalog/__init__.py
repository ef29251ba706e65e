"""Data shipped with the package: the model catalog."""
