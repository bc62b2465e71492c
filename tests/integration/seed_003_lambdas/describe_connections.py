"""Seed 003's DescribeConnections function: the target endpoint's connection status."""

import os

import boto3

dms = boto3.client("dms")


def lambda_handler(event, context):
    answer = dms.describe_connections(
        Filters=[{"Name": "endpoint-arn", "Values": [os.environ["S3_ENDPOINT_ARN"]]}]
    )
    return {"Status": answer["Connections"][0]["Status"]}
