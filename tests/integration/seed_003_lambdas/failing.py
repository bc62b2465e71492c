"""A function that raises: its error reaches the state machine as Lambda's would."""


def lambda_handler(event, context):
    raise ValueError(f"no good: {event}")
