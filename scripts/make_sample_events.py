"""Writes the sample Stripe events in events/ (run once; the files are committed).

Shapes follow Stripe's API (version 2024-06-20) for one customer, Acme
Robotics, who buys the `pro` plan monthly for the subdomain `acme`.
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "events"
CUSTOMER = "cus_QAcmeR0b0t1cs"
SUBSCRIPTION = "sub_1QAcmeR0b0t1csPro"
PRICE_PRO_MONTHLY = "price_1QProMonthlyCAD"
T0 = 1_763_800_000  # 2025-11-22T08:26:40Z


def envelope(evt_id, event_type, created, obj, previous=None):
    data = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": evt_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def price(pid, amount, interval):
    return {
        "id": pid, "object": "price", "active": True, "billing_scheme": "per_unit",
        "currency": "cad", "livemode": False, "lookup_key": None, "metadata": {},
        "product": "prod_QTenancyPro", "recurring": {"interval": interval, "interval_count": 1,
        "usage_type": "licensed"}, "type": "recurring", "unit_amount": amount,
    }


def subscription(status, created, price_obj, **extra):
    sub = {
        "id": SUBSCRIPTION, "object": "subscription", "cancel_at_period_end": False,
        "collection_method": "charge_automatically", "created": T0, "currency": "cad",
        "current_period_start": T0, "current_period_end": T0 + 30 * 86400, "customer": CUSTOMER,
        "items": {"object": "list", "data": [{"id": "si_QAcmeItem", "object": "subscription_item",
                  "price": price_obj, "quantity": 1, "subscription": SUBSCRIPTION}],
                  "has_more": False, "total_count": 1, "url": f"/v1/subscription_items?subscription={SUBSCRIPTION}"},
        "latest_invoice": "in_1QAcmeInvoice01", "livemode": False,
        "metadata": {"subdomain": "acme", "plan": "pro", "billing": "monthly", "organization": "Acme Robotics"},
        "status": status,
    }
    sub.update(extra)
    return sub


def invoice(inv_id, status, paid, created, **extra):
    inv = {
        "id": inv_id, "object": "invoice", "account_country": "CA", "amount_due": 5000,
        "amount_paid": 5000 if paid else 0, "amount_remaining": 0 if paid else 5000,
        "attempt_count": 1, "attempted": True, "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically", "created": created, "currency": "cad",
        "customer": CUSTOMER, "customer_email": "dana@acme.example", "hosted_invoice_url":
        f"https://invoice.stripe.com/i/acct_test/{inv_id}", "livemode": False, "paid": paid,
        "period_start": T0, "period_end": T0 + 30 * 86400, "status": status,
        "subscription": SUBSCRIPTION, "total": 5000,
        "lines": {"object": "list", "data": [{"id": "il_QAcme", "object": "line_item", "amount": 5000,
                  "currency": "cad", "description": "1 × Pro (at $50.00 / month)",
                  "period": {"start": T0, "end": T0 + 30 * 86400}, "price": price(PRICE_PRO_MONTHLY, 5000, "month")}],
                  "has_more": False, "total_count": 1},
    }
    inv.update(extra)
    return inv


def main():
    OUT.mkdir(exist_ok=True)
    checkout = {
        "id": "cs_test_a1AcmeCheckoutSession", "object": "checkout.session",
        "allow_promotion_codes": True, "amount_subtotal": 5000, "amount_total": 5000,
        "billing_address_collection": None, "cancel_url": "https://example.com/pricing",
        "client_reference_id": None, "created": T0 - 60, "currency": "cad",
        "customer": CUSTOMER, "customer_creation": "always",
        "customer_details": {"address": {"city": "Montréal", "country": "CA", "line1": None, "line2": None,
                             "postal_code": "H2X 1Y4", "state": "QC"}, "email": "dana@acme.example",
                             "name": "Dana Kowalski", "phone": None, "tax_exempt": "none", "tax_ids": []},
        "customer_email": "dana@acme.example", "expires_at": T0 + 86400 - 60, "invoice": "in_1QAcmeInvoice01",
        "livemode": False, "locale": None,
        "metadata": {"subdomain": "acme", "plan": "pro", "billing": "monthly", "organization": "Acme Robotics"},
        "mode": "subscription", "payment_intent": None, "payment_method_types": ["card"],
        "payment_status": "paid", "status": "complete", "subscription": SUBSCRIPTION,
        "success_url": "https://example.com/welcome?session_id={CHECKOUT_SESSION_ID}",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}, "url": None,
    }
    pro = price(PRICE_PRO_MONTHLY, 5000, "month")
    ultimate = price("price_1QUltimateMonthlyCAD", 12000, "month")
    events = [
        envelope("evt_1QAcmeCheckoutDone", "checkout.session.completed", T0 + 2, checkout),
        envelope("evt_1QAcmeSubCreated", "customer.subscription.created", T0 + 1,
                 subscription("active", T0 + 1, pro)),
        envelope("evt_1QAcmeInvoicePaid1", "invoice.paid", T0 + 3,
                 invoice("in_1QAcmeInvoice01", "paid", True, T0)),
        envelope("evt_1QAcmeUpgraded", "customer.subscription.updated", T0 + 86400,
                 subscription("active", T0 + 86400, ultimate),
                 previous={"items": {"data": [{"price": pro}]}}),
        envelope("evt_1QAcmePaymentFailed", "invoice.payment_failed", T0 + 31 * 86400,
                 invoice("in_1QAcmeInvoice02", "open", False, T0 + 31 * 86400, attempt_count=1,
                         next_payment_attempt=T0 + 34 * 86400)),
        envelope("evt_1QAcmeInvoicePaid2", "invoice.paid", T0 + 32 * 86400,
                 invoice("in_1QAcmeInvoice02", "paid", True, T0 + 31 * 86400)),
        envelope("evt_1QAcmeSubDeleted", "customer.subscription.deleted", T0 + 90 * 86400,
                 subscription("canceled", T0 + 90 * 86400, ultimate, canceled_at=T0 + 90 * 86400,
                              ended_at=T0 + 90 * 86400)),
        envelope("evt_1QAcmeChargeOk", "charge.succeeded", T0 + 3,
                 {"id": "ch_3QAcmeCharge", "object": "charge", "amount": 5000, "currency": "cad",
                  "customer": CUSTOMER, "paid": True, "status": "succeeded"}),
    ]
    def other_checkout(evt_id, session, customer, subscription, email, name, metadata, amount, created):
        session_obj = dict(checkout, id=session, customer=customer, subscription=subscription,
                           customer_email=email, amount_subtotal=amount, amount_total=amount,
                           metadata=metadata, invoice=None, created=created - 60)
        session_obj["customer_details"] = dict(checkout["customer_details"], email=email, name=name)
        return envelope(evt_id, "checkout.session.completed", created, session_obj)

    events += [
        # A second customer: the top plan, billed annually.
        other_checkout("evt_1QGlobexCheckoutDone", "cs_test_b2GlobexCheckoutSession", "cus_QGl0bexC0rp",
                       "sub_1QGl0bexUltimate", "hank@globex.example", "Hank Scorpio",
                       {"subdomain": "globex", "plan": "ultimate", "billing": "annual",
                        "organization": "Globex Corporation"}, 72000, T0 + 600),
        # Metadata that cannot make a tenant: a reserved name and an unknown plan.
        other_checkout("evt_1QInitechCheckoutDone", "cs_test_c3InitechCheckoutSession", "cus_QIn1tech",
                       "sub_1QIn1techPlatinum", "bill@initech.example", "Bill Lumbergh",
                       {"subdomain": "admin", "plan": "platinum", "billing": "monthly",
                        "organization": "Initech"}, 9900, T0 + 700),
        # Someone else paying for a name Acme already holds.
        other_checkout("evt_1QHooliCheckoutDone", "cs_test_d4HooliCheckoutSession", "cus_QH00li",
                       "sub_1QH00liBasic", "gavin@hooli.example", "Gavin Belson",
                       {"subdomain": "acme", "plan": "basic", "billing": "monthly",
                        "organization": "Hooli"}, 2000, T0 + 800),
    ]
    globex_sub = "sub_1QGl0bexUltimate"
    def globex_update(evt_id, status, created):
        sub = subscription(status, created, price("price_1QUltimateAnnualCAD", 72000, "year"))
        sub.update(id=globex_sub, customer="cus_QGl0bexC0rp", latest_invoice="in_1QGlobexInvoice02",
                   metadata={"subdomain": "globex", "plan": "ultimate", "billing": "annual",
                             "organization": "Globex Corporation"})
        sub["items"]["data"][0]["subscription"] = globex_sub
        return envelope(evt_id, "customer.subscription.updated", created, sub)

    events += [
        # Globex's card stops working for good: Stripe marks the subscription unpaid ...
        globex_update("evt_1QGlobexUnpaid", "unpaid", T0 + 600 + 40 * 86400),
        # ... and active again once they pay.
        globex_update("evt_1QGlobexActiveAgain", "active", T0 + 600 + 41 * 86400),
        # A past_due update for Acme that Stripe delivers late, after the invoice was paid.
        envelope("evt_1QAcmeLatePastDue", "customer.subscription.updated", T0 + 31 * 86400 + 60,
                 subscription("past_due", T0 + 31 * 86400 + 60, ultimate)),
    ]
    # A subscription the business sold some other way (a yoga course): its
    # metadata is not ours, so dispatch drops it.
    yoga = subscription("active", T0 + 86400, price("price_1QYogaCourse", 9000, "month"))
    yoga.update(id="sub_1QYogaCourse0001", customer="cus_QYogaStudent01", metadata={"course": "yoga-101"})
    yoga["items"]["data"][0]["subscription"] = "sub_1QYogaCourse0001"
    events.append(envelope("evt_1QYogaCourseUpdated", "customer.subscription.updated", T0 + 86400, yoga))
    for index, event in enumerate(events, start=1):
        path = OUT / f"{index:02d}-{event['type']}.json"
        path.write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(path.relative_to(OUT.parent))


if __name__ == "__main__":
    main()
