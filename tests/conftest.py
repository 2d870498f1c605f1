"""Shared pytest configuration: fixtures live in plugin modules under tests/support/."""

pytest_plugins = ["support.kube", "support.aws", "support.operator", "support.iam_audit"]
