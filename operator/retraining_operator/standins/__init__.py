"""Local stand-ins for AWS used by the demo and the tests (optional extra `standins`).

The operator's runtime path never imports this package (an import-linter contract holds it).
"""
