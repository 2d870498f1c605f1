"""Local stand-ins for AWS used by the demo and the tests (optional extra `standins`).

The operator's runtime path never imports this package (an import-linter contract holds it),
and this module imports nothing, so `retraining-operator --help` stays light.

- `stack.AwsStandins`: everything together (start/stop, `env()`, clients, reset).
- `moto_server`: S3, STS and CloudWatch on moto's server, behind faults and the request log.
- `server` + `emulator`: the SageMaker (JSON 1.1) and A2I runtime (REST-JSON) emulator,
  built from `training`, `hosting` and `a2i`, validated by `validation`/`wire` against
  botocore's service model.
- `clock`, `faults`, `requestlog`: what tests control and observe.
- `seed`: realistic A2I outputs; `demo`: the demo's seeded world; `control`: the HTTP control
  client; `cli`: `retraining-operator standins`.

See docs/testing.md, "AWS stand-ins".
"""
