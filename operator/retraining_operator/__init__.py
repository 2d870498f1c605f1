"""a2i-retraining-operator.

A2I human reviews -> augmented manifests -> incremental training -> gated rollout.
"""

__version__ = "0.1.0"
