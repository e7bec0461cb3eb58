// The Stripe webhook Lambda written the usual way in Node.js: the AWS SDK
// for JavaScript v3 and stripe-node, for make bench's cold-start section
// (bench-coldstart).
//
// At init it reads the signing secret from an SSM SecureString and creates
// the SQS client; per event it verifies the signature with
// stripe.webhooks.constructEvent and sends the event to SQS, answering API
// Gateway (HTTP API, payload 2.0). The loop at the bottom stands in for the
// managed runtime's bootstrap (its runtime interface client), which is not
// available here: a minimal Runtime API client on node:http.

import http from 'node:http';

import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import Stripe from 'stripe';

const queueUrl = process.env.EVENT_QUEUE_URL;
const live = process.env.STRIPE_MODE === 'live';

const ssm = new SSMClient({});
const sqs = new SQSClient({});
const { Parameter } = await ssm.send(
  new GetParameterCommand({ Name: process.env.STRIPE_WEBHOOK_SECRET_PARAM, WithDecryption: true }),
);
const webhookSecret = Parameter.Value;

const respond = (statusCode, body) => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

export const handler = async (event) => {
  const payload = event.isBase64Encoded
    ? Buffer.from(event.body ?? '', 'base64').toString('utf8')
    : (event.body ?? '');
  const signature = event.headers?.['stripe-signature'] ?? '';
  let stripeEvent;
  try {
    // Webhook checks need no API key: the static helper, no client.
    stripeEvent = Stripe.webhooks.constructEvent(payload, signature, webhookSecret);
  } catch (error) {
    return respond(400, { error: error.message });
  }
  if (stripeEvent.livemode !== live) {
    return respond(400, { error: 'event livemode does not match this endpoint' });
  }
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: payload,
      MessageAttributes: {
        stripe_event_id: { DataType: 'String', StringValue: stripeEvent.id },
        stripe_event_type: { DataType: 'String', StringValue: stripeEvent.type },
        stripe_created: { DataType: 'Number', StringValue: String(stripeEvent.created) },
      },
    }),
  );
  return respond(200, { received: true });
};

// The Lambda Runtime API, 2018-06-01: fetch an event, post its answer.
const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(':');
const agent = new http.Agent({ keepAlive: true });

function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host, port, method, path, agent, headers: body ? { 'content-type': 'application/json' } : {} },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => resolve({ headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

for (;;) {
  const next = await call('GET', '/2018-06-01/runtime/invocation/next');
  const requestId = next.headers['lambda-runtime-aws-request-id'];
  let outcome = 'response';
  let result;
  try {
    result = JSON.stringify(await handler(JSON.parse(next.body)));
  } catch (error) {
    // Reported to Lambda, as the managed runtime does.
    outcome = 'error';
    result = JSON.stringify({ errorMessage: error.message, errorType: error.name });
  }
  await call('POST', `/2018-06-01/runtime/invocation/${requestId}/${outcome}`, result);
}
