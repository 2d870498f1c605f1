"""Gateways to AWS (A2I runtime, S3, SageMaker, STS, CloudWatch). boto3 is used only here."""
