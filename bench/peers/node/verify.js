// stripe-node's side of BENCHMARKS.md section 1, run by bench-verify.
//
// Times `stripe.webhooks.constructEvent` on the payload bytes and header that
// bench-verify wrote, as an Express `express.raw()` handler calls it (a
// Buffer, default 300 s tolerance), followed by the type and livemode check a
// handler makes before acting. Same scheme as the Rust side: one warm-up
// batch, then --batches batches of --iterations calls, each batch's mean
// seconds per event from process.hrtime.bigint. Any failed or wrong call ends
// the run with a non-zero exit. Prints one JSON object on stdout.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const { parseArgs } = require('node:util');
const Stripe = require('stripe');

function fail(message) {
  process.stderr.write(`verify.js: ${message}\n`);
  process.exit(1);
}

function main() {
  const text = { type: 'string' };
  const { values: args } = parseArgs({
    options: {
      payload: text, header: text, secret: text, 'event-id': text, 'event-type': text,
      batches: text, iterations: text,
    },
  });
  for (const name of ['payload', 'header', 'secret', 'event-id', 'event-type', 'batches', 'iterations']) {
    if (args[name] === undefined) fail(`--${name} is required`);
  }
  const batches = Number.parseInt(args.batches, 10);
  const iterations = Number.parseInt(args.iterations, 10);
  if (!(batches > 0 && iterations > 0)) fail('--batches and --iterations must be positive');

  const payload = fs.readFileSync(args.payload);
  const header = fs.readFileSync(args.header, 'ascii').trim();
  const secret = args.secret;
  const eventType = args['event-type'];
  // No request is made: the client is only the way to reach `webhooks`.
  const stripe = Stripe('sk_test_bench_no_requests_are_made');

  const first = stripe.webhooks.constructEvent(payload, header, secret);
  if (first.id !== args['event-id'] || first.type !== eventType || first.livemode) {
    fail(`constructed the wrong event: ${first.id} ${first.type}`);
  }

  const means = [];
  let checked = 0;
  for (let batch = 0; batch <= batches; batch++) {
    let good = 0;
    const started = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) {
      // constructEvent throws on a bad signature or body.
      const event = stripe.webhooks.constructEvent(payload, header, secret);
      if (event.type === eventType && !event.livemode) good++;
    }
    const elapsed = process.hrtime.bigint() - started;
    if (good !== iterations) fail(`${iterations - good} wrong events in batch ${batch}`);
    checked += good;
    if (batch > 0) means.push(Number(elapsed) / 1e9 / iterations);
  }

  // The same HMAC alone through Node's crypto (OpenSSL): a second floor, to
  // show how much of ours is the SHA-256 implementation rather than the work.
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) fail('header is not `t=…,v1=…`');
  const signedPrefix = Buffer.from(`${match[1]}.`);
  const expected = Buffer.from(match[2], 'hex');
  const hmacMeans = [];
  for (let batch = 0; batch <= batches; batch++) {
    let good = 0;
    const started = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) {
      const mac = crypto.createHmac('sha256', secret).update(signedPrefix).update(payload).digest();
      if (mac.equals(expected)) good++;
    }
    const elapsed = process.hrtime.bigint() - started;
    if (good !== iterations) fail(`${iterations - good} wrong HMACs in batch ${batch}`);
    if (batch > 0) hmacMeans.push(Number(elapsed) / 1e9 / iterations);
  }

  const version = Stripe.PACKAGE_VERSION;
  process.stdout.write(JSON.stringify({
    library: `stripe-node ${version}`,
    runtime: `Node.js ${process.version}`,
    batch_means_s: means,
    events_checked: checked,
    hmac_batch_means_s: hmacMeans,
  }));
}

main();
