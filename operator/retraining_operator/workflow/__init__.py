"""Workflows: compose AWS gateways with the pure decisions of reconcile/ and manifest/ (no kopf)."""
