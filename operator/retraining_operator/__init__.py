"""a2i-retraining-operator: A2I human reviews -> augmented manifests -> incremental training -> gated rollout."""

__version__ = "0.1.0"

API_GROUP = "retraining.hitl.dev"
API_VERSION = "v1alpha1"
PLURAL = "retrainingpolicies"
KIND = "RetrainingPolicy"
