"""Local stand-ins used by the demo and the tests: distribution `a2i-retraining-standins`.

It depends on the operator; the operator never imports it (an import-linter contract holds it).
This module imports nothing, so `retraining-standins --help` stays light.

- `stack.AwsStandins`: everything together (start/stop, `env()`, clients, reset).
- `moto_server`: S3, STS and CloudWatch on moto's server, behind faults and the request log.
- `server` + `emulator`: the SageMaker (JSON 1.1) and A2I runtime (REST-JSON) emulator,
  built from `training`, `transform`, `hosting` and `a2i`, validated by `validation`/`wire`
  against botocore's service model.
- `images`: fake JPEGs carrying their true boxes (what seeding writes at each image URI);
  `detector`: what a model of a given `ModelQuality` answers for them in Batch Transform.
- `clock`, `faults`, `requestlog`: what tests control and observe.
- `kubeapi`: a real kube-apiserver + etcd (envtest binaries from `--assets`/KUBEBUILDER_ASSETS).
- `seed`: realistic A2I outputs; `demo`: the demo's seeded world; `demo_run`: the demo itself;
  `control`: the HTTP control client; `cli`: `retraining-standins serve|demo`.

See docs/testing.md, "AWS stand-ins".
"""
