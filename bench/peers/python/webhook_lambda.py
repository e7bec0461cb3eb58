"""The Stripe webhook Lambda written the usual way in Python: boto3 and
stripe-python, for make bench's cold-start section (bench-coldstart).

At init it reads the signing secret from an SSM SecureString and creates the
SQS client; per event it verifies the signature with
stripe.Webhook.construct_event and sends the event to SQS, answering API
Gateway (HTTP API, payload 2.0). The loop at the bottom stands in for the
managed runtime's bootstrap (awslambdaric), which is not available here: a
minimal Runtime API client on http.client.
"""

import base64
import http.client
import json
import os

import boto3
import stripe

SECRET_PARAM = os.environ["STRIPE_WEBHOOK_SECRET_PARAM"]
QUEUE_URL = os.environ["EVENT_QUEUE_URL"]
LIVE = os.environ.get("STRIPE_MODE") == "live"

ssm = boto3.client("ssm")
sqs = boto3.client("sqs")
WEBHOOK_SECRET = ssm.get_parameter(Name=SECRET_PARAM, WithDecryption=True)["Parameter"]["Value"]


def respond(status, body):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def handler(event, context):
    payload = event.get("body") or ""
    if event.get("isBase64Encoded"):
        payload = base64.b64decode(payload).decode("utf-8")
    signature = (event.get("headers") or {}).get("stripe-signature", "")
    try:
        stripe_event = stripe.Webhook.construct_event(payload, signature, WEBHOOK_SECRET)
    except (ValueError, stripe.SignatureVerificationError) as error:
        return respond(400, {"error": str(error)})
    if stripe_event["livemode"] != LIVE:
        return respond(400, {"error": "event livemode does not match this endpoint"})
    sqs.send_message(
        QueueUrl=QUEUE_URL,
        MessageBody=payload,
        MessageAttributes={
            "stripe_event_id": {"DataType": "String", "StringValue": stripe_event["id"]},
            "stripe_event_type": {"DataType": "String", "StringValue": stripe_event["type"]},
            "stripe_created": {"DataType": "Number", "StringValue": str(stripe_event["created"])},
        },
    )
    return respond(200, {"received": True})


def main():
    # The Lambda Runtime API, 2018-06-01: fetch an event, post its answer.
    api = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    while True:
        api.request("GET", "/2018-06-01/runtime/invocation/next")
        response = api.getresponse()
        event = json.loads(response.read())
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
        try:
            result, outcome = json.dumps(handler(event, None)), "response"
        except Exception as error:  # reported to Lambda, as the managed runtime does
            result = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__})
            outcome = "error"
        api.request(
            "POST",
            f"/2018-06-01/runtime/invocation/{request_id}/{outcome}",
            body=result,
            headers={"Content-Type": "application/json"},
        )
        api.getresponse().read()


if __name__ == "__main__":
    main()
