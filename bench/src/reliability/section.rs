//! The Markdown section of a reliability run.

use tenancy::adapters::faults::FaultCounts;
use tenancy::adapters::stripe::RateLimit;
use tenancy::stripe::StripeMode;

use super::{Counted, Outcome, Phase};
use crate::report::{Table, seconds};

fn percent(rate: f64) -> String {
    format!("{:.0} %", rate * 100.0)
}

fn counted(c: &Counted) -> String {
    format!("{} exact, {} missing, {} doubled, {} orphans", c.exact, c.missing, c.doubled, c.orphans)
}

/// The Markdown section, one column per run.
pub fn section(runs: &[Outcome], command: &str) -> String {
    let mut header = vec!["".to_owned()];
    header.extend(runs.iter().map(|r| format!("{} faults", percent(r.plan.rate))));
    let mut table = Table::new(header);
    let mut row = |label: &str, cell: &dyn Fn(&Outcome) -> String| {
        let mut cells = vec![label.to_owned()];
        cells.extend(runs.iter().map(cell));
        table.row(cells);
    };
    let settled =
        |phase: &Phase| phase.settled.map_or("**did not settle**".to_owned(), |d| seconds(d.as_secs_f64()));
    row("Checkouts (events, deliveries)", &|r| {
        format!("{} ({} events, {} deliveries)", r.plan.checkouts, r.checkouts.events, r.checkouts.deliveries)
    });
    row("Stories (events, deliveries)", &|r| {
        format!("{} ({} events, {} deliveries)", r.plan.stories, r.stories.events, r.stories.deliveries)
    });
    row("AWS calls through the proxy / failed", &|r| {
        let t: FaultCounts = r.faults.total();
        format!(
            "{} / {} ({} before, {} after the effect, {} stalled)",
            t.calls,
            t.injected(),
            t.before,
            t.after,
            t.timeout_with_effect + t.timeout_without_effect
        )
    });
    row("Time to converge: checkouts", &|r| settled(&r.checkouts));
    row("Time to converge: stories", &|r| settled(&r.stories));
    row("Subscriptions: running / suspended / cancelled", &|r| {
        format!("{} / {} / {}", r.end.running, r.end.suspended, r.end.cancelled)
    });
    row("**Tenants as Stripe says**", &|r| {
        let ok = r.end.subscriptions - r.end.records_off;
        format!("**{ok} of {}**", r.end.subscriptions)
    });
    row("ECS services", &|r| counted(&r.end.services));
    row("Services at the wrong desired count", &|r| r.end.wrong_desired_count.to_string());
    row("Target groups", &|r| counted(&r.end.target_groups));
    row("Listener rules", &|r| counted(&r.end.rules));
    row("DNS records", &|r| counted(&r.end.dns_records));
    row("**Orphans** (target 0)", &|r| format!("**{}**", r.end.orphans()));
    row("Mails sent / meant (extra)", &|r| {
        format!("{} / {} ({})", r.end.mails_sent, r.end.mails_meant, r.end.extra_mails())
    });
    row("Ambiguous SES sends / table updates", &|r| {
        format!("{} / {}", r.ambiguous_sends(), r.ambiguous_table_writes())
    });
    row("Stripe reads, writes; reads per event", &|r| {
        let events = (r.checkouts.events + r.stories.events).max(1);
        format!("{}, {}; {:.2}", r.stripe_reads, r.stripe_writes, r.stripe_reads as f64 / events as f64)
    });
    row("Stripe reads, peak per second (limit)", &|r| {
        // The stand-in's key is a test key.
        let limit = RateLimit::for_mode(StripeMode::Test).per_window();
        format!("{} ({limit:.0}, test mode)", r.stripe_peak_reads)
    });
    row("Checkout API answers retried (5xx)", &|r| r.checkout_retries.to_string());
    row("Story changes Stripe refused", &|r| r.refused_actions.to_string());
    row("Deliveries refused after Stripe's retries", &|r| {
        (r.checkouts.refused + r.stories.refused).to_string()
    });
    row("Dead letters", &|r| r.dead_letters.to_string());
    row("Executions not SUCCEEDED (by error)", &|r| {
        if r.errors.is_empty() {
            "none".to_owned()
        } else {
            r.errors.iter().map(|(e, n)| format!("{e} ×{n}")).collect::<Vec<_>>().join(", ")
        }
    });
    row("Run time", &|r| seconds(r.elapsed.as_secs_f64()));

    let mut out = String::new();
    out += "## 6. Reliability under injected AWS faults\n\n";
    out += "Paid checkouts and subscription stories through the whole stack: the webhook,\n";
    out += "the dispatcher, the state machine files in the local interpreter and the\n";
    out += "steps, with the **AWS adapters on moto's server behind the fault proxy**\n";
    out += "(`tenantctl fault-proxy`: a share of calls throttled before the effect, answered\n";
    out += "500 after it, or stalled 6 s, past the SDK's 5 s attempt timeout, in equal\n";
    out += "parts). Stripe is the local stand-in, read over HTTP through async-stripe's types.\n";
    out += "Every event is delivered 1 to 3 times and all deliveries are shuffled; stories\n";
    out += "(1 to 4 changes each: plan changes, failing and recovering cards, unpaid, pause,\n";
    out += "resume, cancel) change Stripe in rounds 2 s apart while executions still run,\n";
    out += "a fifth of each round's deliveries arriving a round late. A delivery waits while\n";
    out += &format!(
        "{} executions are at work (not counting those waiting for their tenant to exist):\n",
        runs.first().map_or(0, |r| r.plan.max_running)
    );
    out += "moto's server answers 60 to 80 calls a second on this machine, and with more at\n";
    out += "once it, not the system, is what fails. The stack runs at a tenth of real time\n";
    out += "(Wait states, retry intervals), as stalls and the SDK's timeouts are real time.\n";
    out += "The end state is read from moto directly, not from our records, and compared\n";
    out += "with each subscription as Stripe has it at the end.\n\n";
    out += &format!("```\n{command}\n```\n\n");
    out += &table.to_markdown();
    out += "\n";
    for run in runs {
        if !run.end.examples.is_empty() {
            out += &format!(
                "Tenants off at {} faults (first {}): {}.\n\n",
                percent(run.plan.rate),
                run.end.examples.len(),
                run.end.examples.join("; ")
            );
        }
    }
    for run in runs {
        let mut failures: Vec<(&String, &(usize, String))> = run.task_failures.iter().collect();
        failures.sort_by_key(|(_, (n, _))| std::cmp::Reverse(*n));
        let total: usize = failures.iter().map(|(_, (n, _))| n).sum();
        out += &format!(
            "Task attempts that failed at {} faults, each retried by its state's Retry: {total}; the most frequent:\n\n",
            percent(run.plan.rate)
        );
        for (key, (n, cause)) in failures.iter().take(8) {
            let cause: String = cause.chars().take(160).collect();
            out += &format!("- {key} ×{n} (e.g. `{}`)\n", cause.replace('`', "'"));
        }
        out += "\n";
    }
    out += "How to read it: *exact* counts tenants that should have the resource (Stripe\n";
    out += "says running or suspended) and have exactly one; a cancelled tenant should have\n";
    out += "none, so any left is an orphan. An extra mail is SES accepting a mail a step then\n";
    out += "sent again: SES takes no idempotency key, so a send that took effect but\n";
    out += "reported failure, or a failed write of the mail's sent mark, is retried; each\n";
    out += "extra needs one of the ambiguous calls beside it. Stripe reads are the\n";
    out += "subscription re-reads (one per provisioning and per applied event, and retries);\n";
    out += "the peak is over any one-second window, against test mode's 25 reads/s that\n";
    out += "the client's token bucket holds to. moto does not enforce the load balancer's\n";
    out += "quotas (100 target groups per ALB); the launcher does, so the run gets a pool\n";
    out += "of load balancers with room for every checkout (section 7).\n";
    out
}
