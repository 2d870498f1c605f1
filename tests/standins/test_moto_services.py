"""S3, STS and CloudWatch on moto: what rollout analysis and per-policy roles need."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

from retraining_standins.stack import AwsStandins

DIMENSIONS = [
    {"Name": "EndpointName", "Value": "od-endpoint"},
    {"Name": "VariantName", "Value": "Canary"},
]


def test_assume_role_serves_per_policy_credentials(aws: AwsStandins, aws_bucket: str) -> None:
    credentials = boto3.client("sts").assume_role(
        RoleArn="arn:aws:iam::111122223333:role/vision-retraining", RoleSessionName="rtp-policy"
    )["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    identity = session.client("sts").get_caller_identity()
    assert identity["Arn"] == "arn:aws:sts::111122223333:assumed-role/vision-retraining/rtp-policy"
    # The assumed role reads and writes the same bucket the test created.
    session.client("s3").put_object(Bucket=aws_bucket, Key="from-role.txt", Body=b"hi")
    assert aws.get_object(f"s3://{aws_bucket}/from-role.txt") == b"hi"


def test_single_account_mode_shares_alarms_with_assumed_roles(aws: AwsStandins) -> None:
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName="od-endpoint-5xx",
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    credentials = boto3.client("sts").assume_role(
        RoleArn="arn:aws:iam::111122223333:role/vision-retraining", RoleSessionName="rtp-policy"
    )["Credentials"]
    as_role = boto3.client(
        "cloudwatch",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    alarms = as_role.describe_alarms(AlarmNames=["od-endpoint-5xx"])["MetricAlarms"]
    assert [a["AlarmName"] for a in alarms] == ["od-endpoint-5xx"]


def test_per_variant_sagemaker_metrics_round_trip(aws: AwsStandins) -> None:
    cloudwatch = boto3.client("cloudwatch")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    cloudwatch.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocation5XXErrors",
                "Dimensions": DIMENSIONS,
                "Timestamp": now - timedelta(minutes=1),
                "Value": 3.0,
            },
            {
                "MetricName": "Invocations",
                "Dimensions": DIMENSIONS,
                "Timestamp": now - timedelta(minutes=1),
                "Value": 100.0,
            },
        ],
    )
    result = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": name.lower(),
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SageMaker",
                        "MetricName": name,
                        "Dimensions": DIMENSIONS,
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
            for name in ("Invocation5XXErrors", "Invocations")
        ],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
    )
    values = {r["Id"]: sum(r["Values"]) for r in result["MetricDataResults"]}
    assert values == {"invocation5xxerrors": 3.0, "invocations": 100.0}
    operations = aws.log.operations("cloudwatch")
    assert operations == ["PutMetricData", "GetMetricData"]
    get = aws.log.calls("cloudwatch", "GetMetricData")[0]
    assert get.params["MetricDataQueries"][0]["MetricStat"]["Metric"]["Dimensions"] == DIMENSIONS


def test_alarm_state_set_and_described(aws: AwsStandins) -> None:
    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="canary-latency",
        Namespace="AWS/SageMaker",
        MetricName="ModelLatency",
        Dimensions=DIMENSIONS,
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=500000.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName="canary-latency", StateValue="ALARM", StateReason="slow")
    [alarm] = cloudwatch.describe_alarms(AlarmNames=["canary-latency"])["MetricAlarms"]
    assert alarm["StateValue"] == "ALARM"
    # The emulator reads the same state (what drives endpoint auto-rollback).
    assert aws.emulator.state.alarms is not None
    assert aws.emulator.state.alarms.states(["canary-latency", "missing"]) == {
        "canary-latency": "ALARM"
    }


def test_reset_drops_buckets(aws: AwsStandins) -> None:
    aws.create_bucket("temporary-bucket")
    aws.reset()
    assert boto3.client("s3").list_buckets()["Buckets"] == []
