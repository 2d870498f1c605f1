"""The flows: one domain's I/O each (ingest, dataset, training, registry, rollout, cleanup).

A flow composes the AWS gateways with the pure decisions of `reconcile/` and `manifest/`;
it never imports the pass (`policy_pass/`) or the runtime (an import-linter contract), so
it can be called by any stage, a command or a test with just a session and a spec.
"""
