//! Cron schedules and time zones: disruption budget windows (UTC, with a duration) and the
//! cron scaler (`start`, `end`, `timezone`), evaluated at any instant, never panic.
//!
//! Input: lines `start`, `end`, `timezone`, `duration ms`, `now ms` (missing ones empty or 0),
//! so that seeds are readable.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tandem_nodescaler::disruption::budgets;
use tandem_nodescaler::snapshot::{Budget, BudgetNodes, BudgetReason};
use tandem_scalers::TriggerParams;
use tandem_scalers::cron::CronConfig;

fuzz_target!(|text: &str| {
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or_default();
    let (schedule, end, timezone) = (next(), next(), next());
    let duration_ms: i64 = next().trim().parse().unwrap_or(0);
    let now_ms: i64 = next().trim().parse().unwrap_or(0);
    let budget = Budget {
        nodes: BudgetNodes::Count(1),
        schedule: Some(schedule.to_owned()),
        duration_ms: Some(duration_ms),
        reasons: Vec::new(),
    };
    let _ = budgets::allowed(&[budget], BudgetReason::Empty, 10, now_ms);

    let metadata = BTreeMap::from([
        ("start".to_owned(), schedule.to_owned()),
        ("end".to_owned(), end.to_owned()),
        ("timezone".to_owned(), timezone.to_owned()),
        ("desiredReplicas".to_owned(), "3".to_owned()),
    ]);
    if let Ok(cron) = CronConfig::parse(&TriggerParams::new("cron", 0, &metadata))
        && let Ok(now) = jiff::Timestamp::from_millisecond(now_ms)
    {
        let _ = cron.is_inside(now);
        let _ = cron.value_at(now);
    }
});
