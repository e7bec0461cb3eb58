#!/usr/bin/env bash
# make demo: start the local stack, send it signed checkouts (from events/
# and through the checkout API on the local Stripe stand-in), change
# subscriptions in the stand-in as customers and Stripe would (each change's
# events delivered signed, duplicated and shuffled), sign up with a free
# trial (once per customer) and with a coupon on a two-year term, send two deliveries
# Stripe's checks must refuse, and print the executions like the Step
# Functions console, then the tenants, services, DNS records and mails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --quiet -p tenantctl
tenantctl="${CARGO_TARGET_DIR:-$root/target}/debug/tenantctl"

export STRIPE_MODE=test
export STRIPE_WEBHOOK_SECRET="whsec_local_demo_secret_0001"
log="$(mktemp -t tenantctl-demo.XXXXXX.log)"
bash -c 'exec "$0" local serve --addr 127.0.0.1:0' "$tenantctl" >"$log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT

base=""
for _ in $(seq 1 100); do
  base="$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$log" | head -n1 | sed 's/^listening on //' || true)"
  [ -n "$base" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { echo "local server did not start" >&2; cat "$log" >&2; exit 1; }

echo "== local stack on $base (Stripe test mode; AWS delays scaled to 1/100)"
send() { "$tenantctl" send --url "$base/stripe/webhook" "$@"; }
settle() { "$tenantctl" local state --server "$base" --wait 120 >/dev/null; }
echo
echo "== paid checkouts, signed as Stripe signs them (Acme's twice: Stripe delivers at least once)"
send events/01-checkout.session.completed.json events/01-checkout.session.completed.json \
  events/09-checkout.session.completed.json events/10-checkout.session.completed.json
settle
echo "-- Hooli pays for 'acme', which Acme now holds: rejected, and Hooli's money goes back"
echo "   by itself (subscription cancelled, payment refunded, both read back from the local Stripe):"
send events/11-checkout.session.completed.json
settle
"$tenantctl" local subscriptions --server "$base" | grep -E "^SUBSCRIPTION|hooli|Hooli|acme" || true
echo
echo "== Acme's subscription, changed in the local Stripe as a customer and Stripe's dunning"
echo "   would, each change's events signed and delivered as Stripe sends them: duplicated,"
echo "   shuffled. Every event is only a trigger: the subscription is read back from Stripe,"
echo "   and the tenant converges to what Stripe says now, whatever the order."
sub() { "$tenantctl" local subscription --server "$base" "$@"; }
echo "-- upgrade to Ultimate (each event delivered twice, in a shuffled order):"
sub sub_1QAcmeR0b0t1csPro upgrade ultimate --duplicate 1 --reorder --seed 7
settle
echo "-- the card is declined at renewal, then the customer fixes it:"
sub sub_1QAcmeR0b0t1csPro card-fails
settle
sub sub_1QAcmeR0b0t1csPro card-recovers
settle
echo "-- a downgrade and a failed card at once, all four events delivered in reverse:"
sub sub_1QAcmeR0b0t1csPro downgrade basic --reorder --seed 3
sub sub_1QAcmeR0b0t1csPro card-fails --reorder --seed 5
settle
echo "-- Acme cancels:"
sub sub_1QAcmeR0b0t1csPro cancel --duplicate 2
settle
echo
echo "== Globex stops paying (past due, then unpaid: suspended at zero tasks, DNS kept),"
echo "   and pays again (active: resumed)"
sub sub_1QGl0bexUltimate card-fails
sub sub_1QGl0bexUltimate unpaid
settle
sub sub_1QGl0bexUltimate card-recovers
settle
echo "-- a subscription the business sold some other way (its metadata is not ours):"
send events/15-customer.subscription.updated.json
settle
echo
echo "== a signup through the checkout API: the subdomain is checked, held, a Checkout"
echo "   Session is created (through the async-stripe client, on a local Stripe stand-in),"
echo "   the customer pays, and Stripe's"
echo "   signed checkout.session.completed provisions the tenant"
curl_free() { "$tenantctl" local checkout --server "$base" "$@"; }
echo "-- GET /subdomains/initrode: $("$tenantctl" local available --server "$base" initrode)"
answer="$(curl_free --plan basic --billing monthly --subdomain initrode --organization 'Initrode' --email 'peter@initrode.example')"
echo "-- POST /checkout: $answer"
session="$(printf '%s' "$answer" | grep -oE 'cs_test_[A-Za-z0-9]+' | head -n1)"
echo "-- the same subdomain for someone else while the first checkout is open:"
curl_free --plan pro --billing annual --subdomain initrode --organization 'Initech' --email 'bill@initech.example'
echo "-- paying $session: Basic has a 14-day free trial, so nothing is charged today and the tenant"
echo "   runs. The stand-in's clock does not move, so the demo pays it as a 3-day trial: its reminder"
echo "   is due at once (Stripe sends trial_will_end at once for a trial that short)."
"$tenantctl" local pay --server "$base" --trial-days 3 "$session"
settle
echo "-- the same mailbox again, on another name: its one trial is used, so this one is charged"
echo "   from today, and the answer says why:"
curl_free --plan basic --billing monthly --subdomain initrode-labs --organization 'Initrode Labs' --email 'Peter+labs@initrode.example'
initrode_sub="$("$tenantctl" local subscriptions --server "$base" | grep initrode | grep -oE 'sub_local[0-9]+' | head -n1)"
echo "-- Stripe's trial_will_end, delivered twice more: still one reminder mail (with the billing"
echo "   link); then the trial ends and the card is charged:"
sub "$initrode_sub" trial-will-end --duplicate 1
settle
sub "$initrode_sub" trial-ends --then pay
settle
echo "-- someone writes to Initrode's own address, initrode_app@mail.apps.example.test, and to an address"
echo "   no tenant has: SES receiving (here its stand-in) keeps the message and the forwarder sends it"
echo "   on to Initrode's customer, from our verified sender, replies going to the author; the other"
echo "   recipient is dropped and counted. SES delivering the notice again changes nothing."
inbound_mail() {
  python3 - "$base/local/mail/inbound?to=initrode_app@mail.apps.example.test,nobody_app@mail.apps.example.test&id=demo0001" <<'PY'
import json, sys, urllib.request
message = (b"From: =?UTF-8?Q?Zo=C3=AB_Dupr=C3=A9?= <zoe@cafe.example>\r\nTo: initrode_app@mail.apps.example.test\r\n"
           b"Subject: Our order\r\nDKIM-Signature: v=1; d=cafe.example; b=c2lnbmF0dXJl\r\n\r\nBonjour Initrode!\r\n")
answer = json.load(urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=message)))
for d in answer["deliveries"]:
    print("   ", d["outcome"], d["recipient"], "->", d.get("to", d.get("reason", "")))
PY
}
inbound_mail
inbound_mail
echo
echo "== a two-year Pro term with a coupon: WELCOME10 (10 % off the first invoice, Pro only) is made"
echo "   in the local Stripe as an operator would in the Dashboard, then typed on the signup form"
stripe_post() {
  python3 - "$base/v1/$1" "${@:2}" <<'PY'
import sys, urllib.parse, urllib.request
url, pairs = sys.argv[1], [tuple(arg.split("=", 1)) for arg in sys.argv[2:]]
request = urllib.request.Request(url, data=urllib.parse.urlencode(pairs).encode(),
                                 headers={"Authorization": "Bearer sk_test_local_demo"})
urllib.request.urlopen(request).read()
PY
}
stripe_post coupons id=welcome percent_off=10 duration=once 'applies_to[products][0]=tenancy_pro'
stripe_post promotion_codes 'promotion[type]=coupon' 'promotion[coupon]=welcome' code=WELCOME10
answer="$(curl_free --plan pro --billing biennial --subdomain umbrella --organization 'Umbrella' --email 'alice@umbrella.example' --coupon welcome10)"
echo "-- POST /checkout: $answer"
"$tenantctl" local pay --server "$base" "$(printf '%s' "$answer" | grep -oE 'cs_test_[A-Za-z0-9]+' | head -n1)"
settle
echo
echo "== the tenant app asks for its live status (GET /status with the token in its environment),"
echo "   as it would on its own requests: before and after Umbrella's card is declined"
app_status() {
  python3 - "$base" "$1" <<'PY'
import json, sys, urllib.request
base, subdomain = sys.argv[1], sys.argv[2]
state = json.load(urllib.request.urlopen(f"{base}/local/state"))
env = next(s["environment"] for s in state["services"] if s["host"].startswith(subdomain + "."))
request = urllib.request.Request(env["TENANCY_STATUS_URL"],
                                 headers={"Authorization": "Bearer " + env["TENANCY_STATUS_TOKEN"]})
answer = json.load(urllib.request.urlopen(request))
print("   ", {k: answer[k] for k in ("status", "plan", "billing", "limits", "past_due", "paid_until")})
PY
}
app_status umbrella
umbrella_sub="$("$tenantctl" local subscriptions --server "$base" | grep umbrella | grep -oE 'sub_local[0-9]+' | head -n1)"
sub "$umbrella_sub" card-fails
settle
app_status umbrella
echo "-- the coupon on Ultimate, which it is not for:"
curl_free --plan ultimate --billing monthly --subdomain umbrella-two --organization 'Umbrella' --email 'alice@umbrella.example' --coupon WELCOME10 || true
echo
echo "-- an event type the system does not act on:"
send events/08-charge.succeeded.json
echo
echo "== deliveries that must be refused"
echo "-- signed with a secret this endpoint does not hold:"
send --secret whsec_someone_elses_secret events/01-checkout.session.completed.json
echo "-- a replay of an old delivery (signed an hour ago):"
send --timestamp "$(( $(date +%s) - 3600 ))" events/01-checkout.session.completed.json
echo
echo "== the result, once every execution has finished"
"$tenantctl" local state --server "$base" --wait 120
echo
echo "(server log, JSON lines: $log)"
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT
