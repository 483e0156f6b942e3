//! Disruption budgets: how many more nodes of a NodePool may start disrupting for a reason
//! (core `pkg/apis/v1/nodepool.go` `GetAllowedDisruptionsByReason`, reference §5.3).
//!
//! For pool P and reason R: `nodes` = P's initialized nodes (Ready or being deleted),
//! `disrupting` = those being deleted. A budget is active when it has no schedule, or when the
//! most recent hit of its UTC cron schedule is at most `duration` ago; an inactive budget allows
//! anything. Allowed = min over active budgets whose reasons are empty or contain R of
//! `ceil(percent × nodes)` or the count; a budget that cannot be read (bad cron, schedule
//! without duration) allows 0, failing closed as upstream. The allowance is
//! `max(allowed − disrupting, 0)`, and every node a command takes decrements it.

use std::collections::BTreeMap;

use croner::parser::{CronParser, Seconds};
use jiff_croner::Timestamp;
use jiff_croner::tz::TimeZone;
use tandem_model::labels;

use crate::snapshot::{Budget, BudgetNodes, BudgetReason, NodeState, Snapshot};

/// Every reason a budget can name.
const REASONS: [BudgetReason; 3] = [
    BudgetReason::Empty,
    BudgetReason::Drifted,
    BudgetReason::Underutilized,
];

/// Remaining allowance per (NodePool, reason), decremented as commands take nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Budgets {
    remaining: BTreeMap<(String, BudgetReason), usize>,
}

impl Budgets {
    /// The allowances of every NodePool of the snapshot at `now_ms`.
    pub fn compute(snapshot: &Snapshot, now_ms: i64) -> Self {
        let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for n in &snapshot.nodes {
            let Some(pool) = n.labels.get(labels::NODEPOOL) else {
                continue;
            };
            let e = counts.entry(pool.as_str()).or_default();
            match n.state {
                NodeState::Ready => e.0 += 1,
                NodeState::Deleting => {
                    e.0 += 1;
                    e.1 += 1;
                }
                NodeState::Initializing => {}
            }
        }
        let mut remaining = BTreeMap::new();
        for np in &snapshot.nodepools {
            let (nodes, disrupting) = counts.get(np.name.as_str()).copied().unwrap_or_default();
            let settings = snapshot.disruption_of(&np.name);
            for reason in REASONS {
                let allowed = allowed(&settings.budgets, reason, nodes, now_ms);
                remaining.insert(
                    (np.name.clone(), reason),
                    allowed.saturating_sub(disrupting),
                );
            }
        }
        Budgets { remaining }
    }

    /// How many more nodes of `nodepool` may be disrupted for `reason`.
    pub fn remaining(&self, nodepool: &str, reason: BudgetReason) -> usize {
        self.remaining
            .get(&(nodepool.to_owned(), reason))
            .copied()
            .unwrap_or(0)
    }

    /// Takes one node from the allowance; false (and nothing taken) when none is left.
    pub fn take(&mut self, nodepool: &str, reason: BudgetReason) -> bool {
        match self.remaining.get_mut(&(nodepool.to_owned(), reason)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

/// Nodes the budgets allow disrupting for `reason` out of `nodes`, before subtracting those
/// already disrupting; `usize::MAX` when no active budget applies.
pub fn allowed(budgets: &[Budget], reason: BudgetReason, nodes: usize, now_ms: i64) -> usize {
    budgets
        .iter()
        .filter(|b| b.reasons.is_empty() || b.reasons.contains(&reason))
        .filter_map(|b| match is_active(b, now_ms) {
            Ok(true) => Some(match b.nodes {
                BudgetNodes::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
                BudgetNodes::Percent(p) => {
                    (nodes * usize::try_from(p.min(100)).unwrap_or(100)).div_ceil(100)
                }
            }),
            Ok(false) => None,
            Err(()) => Some(0),
        })
        .min()
        .unwrap_or(usize::MAX)
}

/// Whether the budget's window is open at `now_ms`; `Err` when it cannot be read.
fn is_active(budget: &Budget, now_ms: i64) -> Result<bool, ()> {
    match (&budget.schedule, budget.duration_ms) {
        (None, None) => Ok(true),
        (Some(s), Some(d)) => window_open(s, d, now_ms),
        _ => Err(()),
    }
}

/// Whether a window of `duration_ms` opened by the five-field UTC cron `schedule` is open at
/// `now_ms`; `Err` when the schedule cannot be read. Budgets and headroom share it so both
/// read schedules alike.
pub(crate) fn window_open(schedule: &str, duration_ms: i64, now_ms: i64) -> Result<bool, ()> {
    if !schedule.trim_start().starts_with('@') && schedule.split_whitespace().count() != 5 {
        return Err(());
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(schedule)
        .map_err(|_| ())?;
    if duration_ms <= 0 {
        return Ok(false);
    }
    let now = Timestamp::from_millisecond(now_ms)
        .map_err(|_| ())?
        .to_zoned(TimeZone::UTC);
    // The window is open when the schedule fired at a minute in (now − duration, now]. Walk the
    // days back from today and take each day's last firing: the first one found is the latest,
    // and the window is open iff it is recent enough. Day by day, from the pattern's own fields,
    // costs the same for a schedule that never fires (February 31st) and for windows of years;
    // a minute-by-minute scan, or croner's search back for a last hit, took seconds there
    // (found by fuzzing).
    let p = &cron.pattern;
    let hours: Vec<i8> = (0..24i8)
        .rev()
        .filter(|h| matches!(p.hour_match(*h as u32), Ok(true)))
        .collect();
    let minutes: Vec<i8> = (0..60i8)
        .rev()
        .filter(|m| matches!(p.minute_match(*m as u32), Ok(true)))
        .collect();
    if hours.is_empty() || minutes.is_empty() {
        return Ok(false);
    }
    let opened_after = now_ms - duration_ms;
    const DAY_MS: i64 = 86_400_000;
    let mut day = now.date();
    // UTC days are all 24 h long.
    let mut midnight = now_ms - now_ms.rem_euclid(DAY_MS);
    let mut cap = Some((now.hour(), now.minute()));
    loop {
        if let Some((h, m)) = last_firing(p, day, cap, &hours, &minutes) {
            let at = midnight + (i64::from(h) * 60 + i64::from(m)) * 60_000;
            return Ok(at > opened_after);
        }
        if midnight <= opened_after {
            return Ok(false);
        }
        let Ok(before) = day.yesterday() else {
            return Ok(false);
        };
        day = before;
        midnight -= DAY_MS;
        cap = None;
    }
}

/// The last (hour, minute) of `day` at which the pattern fires, no later than `cap`; `hours`
/// and `minutes` are the pattern's, latest first.
fn last_firing(
    p: &croner::CronPattern,
    day: jiff_croner::civil::Date,
    cap: Option<(i8, i8)>,
    hours: &[i8],
    minutes: &[i8],
) -> Option<(i8, i8)> {
    let month = day.month() as u32;
    let weekday = match day.weekday().to_sunday_zero_offset() {
        0 => croner::Weekday::Sunday,
        1 => croner::Weekday::Monday,
        2 => croner::Weekday::Tuesday,
        3 => croner::Weekday::Wednesday,
        4 => croner::Weekday::Thursday,
        5 => croner::Weekday::Friday,
        _ => croner::Weekday::Saturday,
    };
    if !matches!(p.month_match(month), Ok(true))
        || !matches!(
            p.day_match(i32::from(day.year()), month, day.day() as u32, weekday),
            Ok(true)
        )
    {
        return None;
    }
    hours
        .iter()
        .filter(|h| cap.is_none_or(|(ch, _)| **h <= ch))
        .find_map(|h| {
            let m = minutes
                .iter()
                .find(|m| cap.is_none_or(|(ch, cm)| *h < ch || **m <= cm))?;
            Some((*h, *m))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disruption::testing::{cluster, node};
    use crate::snapshot::PoolDisruption;

    const HOUR: i64 = 3_600_000;
    /// 2026-11-25T00:00:00Z.
    const MIDNIGHT: i64 = 1_795_564_800_000;

    fn budget(nodes: BudgetNodes) -> Budget {
        Budget::nodes(nodes)
    }

    #[test]
    fn default_budget_is_ten_percent_rounded_up_minus_disrupting() {
        let mut s = cluster();
        for i in 0..11 {
            s = s.node(node(&format!("n{i}"), "m5.large"));
        }
        let b = Budgets::compute(&s, 0);
        assert_eq!(b.remaining("default", BudgetReason::Underutilized), 2);
        let s = s.node(node("d", "m5.large").state(NodeState::Deleting));
        // 12 nodes: ceil(1.2) = 2, one already deleting.
        assert_eq!(
            Budgets::compute(&s, 0).remaining("default", BudgetReason::Empty),
            1
        );
    }

    #[test]
    fn the_tightest_active_budget_for_the_reason_wins() {
        let budgets = vec![
            budget(BudgetNodes::Percent(50)),
            Budget {
                reasons: vec![BudgetReason::Drifted],
                ..budget(BudgetNodes::Count(1))
            },
        ];
        assert_eq!(allowed(&budgets, BudgetReason::Empty, 10, 0), 5);
        assert_eq!(allowed(&budgets, BudgetReason::Drifted, 10, 0), 1);
        assert_eq!(allowed(&[], BudgetReason::Drifted, 10, 0), usize::MAX);
    }

    #[test]
    fn a_schedule_that_never_fires_is_closed_at_once() {
        // February 31st: searching back for its last hit took seconds (fuzzing found a
        // 10 s case); the window's own minutes are all that need checking.
        assert_eq!(window_open("0 0 31 2 *", 8 * HOUR, MIDNIGHT), Ok(false));
        assert_eq!(window_open(", * * * *", 0, 20_000), Ok(false));
        assert_eq!(
            window_open("0 0 * * *", HOUR, MIDNIGHT + 59 * 60_000),
            Ok(true)
        );
        assert_eq!(window_open("0 0 * * *", HOUR, MIDNIGHT + HOUR), Ok(false));
    }

    /// The minute-by-minute definition: the schedule fired at a minute in (now − duration, now].
    fn open_by_minutes(schedule: &str, duration_ms: i64, now_ms: i64) -> bool {
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(schedule)
            .unwrap();
        let mut t = now_ms.div_euclid(60_000) * 60_000;
        while t > now_ms - duration_ms {
            let at = Timestamp::from_millisecond(t)
                .unwrap()
                .to_zoned(TimeZone::UTC);
            if matches!(cron.is_time_matching(&at), Ok(true)) {
                return true;
            }
            t -= 60_000;
        }
        false
    }

    proptest::proptest! {
        #[test]
        fn the_day_walk_agrees_with_checking_every_minute(
            minute in proptest::sample::select(vec!["*", "0", "*/15", "5,35", "59"]),
            hour in proptest::sample::select(vec!["*", "0", "9-17", "23", "*/6"]),
            dom in proptest::sample::select(vec!["*", "1", "15", "29", "31", "L"]),
            month in proptest::sample::select(vec!["*", "2", "1-6", "12"]),
            dow in proptest::sample::select(vec!["*", "1-5", "0", "6"]),
            now_min in 0i64..(2 * 366 * 24 * 60),
            now_sec in 0i64..60_000,
            duration_min in 1i64..(3 * 24 * 60),
        ) {
            let schedule = format!("{minute} {hour} {dom} {month} {dow}");
            let now = MIDNIGHT + now_min * 60_000 + now_sec;
            let duration = duration_min * 60_000 - 1_000;
            proptest::prop_assert_eq!(
                window_open(&schedule, duration, now),
                Ok(open_by_minutes(&schedule, duration, now)),
                "{} for {} ms at {}", schedule, duration, now
            );
        }
    }

    #[test]
    fn long_windows_of_schedules_that_never_fire_are_cheap() {
        // 200 years of February 31st: 73,000 days, each looked at once (2 ms in a debug
        // build; fuzzing bounds it at 10 s).
        assert_eq!(
            window_open("0 0 31 2 *", 200 * 365 * 24 * HOUR, MIDNIGHT),
            Ok(false)
        );
        // A yearly window a year long is open all year.
        assert_eq!(
            window_open("0 0 1 1 *", 366 * 24 * HOUR, MIDNIGHT),
            Ok(true)
        );
    }

    #[test]
    fn scheduled_budget_applies_only_inside_its_window() {
        // No disruption during business hours: 09:00 UTC for 8 h, weekdays.
        let b = vec![Budget {
            schedule: Some("0 9 * * 1-5".to_owned()),
            duration_ms: Some(8 * HOUR),
            ..budget(BudgetNodes::Count(0))
        }];
        // 2026-11-25 is a Wednesday.
        assert_eq!(
            allowed(&b, BudgetReason::Underutilized, 10, MIDNIGHT + 8 * HOUR),
            usize::MAX
        );
        assert_eq!(
            allowed(&b, BudgetReason::Underutilized, 10, MIDNIGHT + 9 * HOUR),
            0
        );
        assert_eq!(
            allowed(
                &b,
                BudgetReason::Underutilized,
                10,
                MIDNIGHT + 16 * HOUR + 59 * 60_000
            ),
            0
        );
        assert_eq!(
            allowed(&b, BudgetReason::Underutilized, 10, MIDNIGHT + 17 * HOUR),
            usize::MAX
        );
    }

    #[test]
    fn unreadable_budgets_fail_closed() {
        let bad_cron = vec![Budget {
            schedule: Some("every day".to_owned()),
            duration_ms: Some(HOUR),
            ..budget(BudgetNodes::Percent(100))
        }];
        assert_eq!(allowed(&bad_cron, BudgetReason::Empty, 10, 0), 0);
        let no_duration = vec![Budget {
            schedule: Some("@daily".to_owned()),
            ..budget(BudgetNodes::Percent(100))
        }];
        assert_eq!(allowed(&no_duration, BudgetReason::Empty, 10, 0), 0);
    }

    #[test]
    fn take_decrements_until_zero() {
        let s = cluster().node(node("a", "m5.large")).pool_disruption(
            "default",
            PoolDisruption {
                budgets: vec![budget(BudgetNodes::Count(1))],
                ..PoolDisruption::default()
            },
        );
        let mut b = Budgets::compute(&s, 0);
        assert!(b.take("default", BudgetReason::Empty));
        assert!(!b.take("default", BudgetReason::Empty));
        assert!(b.take("default", BudgetReason::Drifted));
    }
}
