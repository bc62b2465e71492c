"""Seed 003's StartReplicationTask function: starts the full load."""

import os

import boto3

dms = boto3.client("dms")


def lambda_handler(event, context):
    answer = dms.start_replication_task(
        ReplicationTaskArn=os.environ["DMS_TASK_ARN"], StartReplicationTaskType="reload-target"
    )
    return {"Status": answer["ReplicationTask"]["Status"]}
