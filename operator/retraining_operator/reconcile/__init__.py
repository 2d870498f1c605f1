"""Pure decisions: given observed state, what to do next. No kopf, no boto3, no I/O."""
