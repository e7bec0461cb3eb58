"""stripe-python's side of BENCHMARKS.md section 1, run by bench-verify.

Times `stripe.Webhook.construct_event` on the payload bytes and header that
bench-verify wrote, as a Flask or Lambda handler calls it (raw `bytes`,
default 300 s tolerance), followed by the type and livemode check a handler
makes before acting. Same scheme as the Rust side: one warm-up batch, then
`--batches` batches of `--iterations` calls, each batch's mean seconds per
event from time.perf_counter_ns. Any failed or wrong call ends the run
with a non-zero exit. Prints one JSON object on stdout.
"""

import argparse
import json
import platform
import sys
import time

import stripe


def main():
    parser = argparse.ArgumentParser()
    for name in ("--payload", "--header", "--secret", "--event-id", "--event-type"):
        parser.add_argument(name, required=True)
    parser.add_argument("--batches", type=int, required=True)
    parser.add_argument("--iterations", type=int, required=True)
    args = parser.parse_args()
    if args.batches < 1 or args.iterations < 1:
        sys.exit("verify.py: --batches and --iterations must be positive")

    with open(args.payload, "rb") as f:
        payload = f.read()
    with open(args.header, encoding="ascii") as f:
        header = f.read().strip()

    construct_event = stripe.Webhook.construct_event
    secret, event_type = args.secret, args.event_type
    event = construct_event(payload, header, secret)
    if event.id != args.event_id or event.type != event_type or event.livemode:
        sys.exit(f"verify.py: constructed the wrong event: {event.id} {event.type}")

    means = []
    checked = 0
    for batch in range(args.batches + 1):
        good = 0
        started = time.perf_counter_ns()
        for _ in range(args.iterations):
            # construct_event raises on a bad signature or body.
            event = construct_event(payload, header, secret)
            if event.type == event_type and not event.livemode:
                good += 1
        elapsed = time.perf_counter_ns() - started
        if good != args.iterations:
            sys.exit(f"verify.py: {args.iterations - good} wrong events in batch {batch}")
        checked += good
        if batch > 0:
            means.append(elapsed / 1e9 / args.iterations)

    json.dump(
        {
            "library": f"stripe-python {stripe.VERSION}",
            "runtime": f"{platform.python_implementation()} {platform.python_version()}",
            "batch_means_s": means,
            "events_checked": checked,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
