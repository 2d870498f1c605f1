"""A2I output -> augmented-manifest lines; splitting; replay mixing. Pure functions."""
