"""Seed 003's ModifyEndpoint function, as the article describes it: the S3 target
endpoint's BucketFolder gets today's date (a Lambda handler calling boto3's dms client)."""

import datetime
import os

import boto3

dms = boto3.client("dms")


def lambda_handler(event, context):
    today = datetime.datetime.now(datetime.UTC)
    folder = f"{os.environ['BUCKET_FOLDER']}/{today:%Y/%m/%d}"
    dms.modify_endpoint(EndpointArn=os.environ["S3_ENDPOINT_ARN"], S3Settings={"BucketFolder": folder})
    return {"BucketFolder": folder}
