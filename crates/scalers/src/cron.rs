//! `cron`: desiredReplicas inside a window that opens at `start` and closes at `end`, in an
//! IANA time zone. Upstream: keda `pkg/scalers/cron_scaler.go`; keda.md §7.
//!
//! The instant is a parameter ([`Scaler::measure`]'s `now`), so the window logic is pure and
//! tested without a clock. Schedules are parsed and evaluated by `croner`; time zones and
//! daylight-saving transitions come from `jiff`.

use crate::params::M;
use crate::{
    Measurement, MetricSpec, MetricValue, ParamError, Scaler, ScalerError, Target, TriggerId,
    TriggerParams, external_name,
};
use croner::parser::{CronParser, Seconds};
use croner::{CivilDate, CivilDateTime, CivilTime, CronDateTime, Resolution, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ZonedDateTime};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

/// Parsed schedules shared by every trigger that spells them the same way. A parsed
/// `croner::Cron` holds ~5 KB of zeroed tables: two per cron trigger were 10 MiB of a 93 MiB
/// heap at 1,000 ScaledObjects (dhat), and most clusters repeat a handful of schedules.
static PARSED: LazyLock<Mutex<HashMap<String, Weak<croner::Cron>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The shared parse of `raw` (already checked to have 5 fields), parsing it on a miss.
fn parse_shared(raw: &str) -> Result<Arc<croner::Cron>, String> {
    let mut cache = PARSED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cron) = cache.get(raw).and_then(Weak::upgrade) {
        return Ok(cron);
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(raw)
        .map_err(|e| e.to_string())?;
    // Searching for the next firing of a schedule that has none runs to the year 5000
    // (seconds per poll; found by fuzzing): refuse it up front.
    if !fires_ever(&cron.pattern) {
        return Err("never fires".into());
    }
    let cron = Arc::new(cron);
    // Schedules no trigger uses any more go when the map has doubled since the last sweep.
    if cache.len() >= 64 && cache.len().is_power_of_two() {
        cache.retain(|_, w| w.strong_count() > 0);
    }
    cache.insert(raw.to_owned(), Arc::downgrade(&cron));
    Ok(cron)
}

/// Parsed `cron` trigger.
#[derive(Debug, Clone)]
pub struct CronConfig {
    /// IANA zone the schedules are read in.
    pub timezone: TimeZone,
    /// Window opens (shared with every trigger spelling it the same way).
    pub start: Arc<croner::Cron>,
    /// Window closes.
    pub end: Arc<croner::Cron>,
    /// Value inside the window.
    pub desired_replicas: i64,
}

impl CronConfig {
    /// Parses and validates: all four parameters required, `start` ≠ `end`,
    /// `desiredReplicas` a non-zero integer.
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let tz_name = p.required_text("timezone", M)?;
        let timezone = TimeZone::get(&tz_name).map_err(|_| {
            p.invalid(
                "timezone",
                format!("{tz_name:?} is not an IANA time zone such as Europe/Paris"),
            )
        })?;
        let schedule = |key: &str| -> Result<(String, Arc<croner::Cron>), ParamError> {
            let raw = p.required_text(key, M)?;
            let fields = raw.split_whitespace().count();
            if fields != 5 {
                return Err(p.invalid(
                    key,
                    format!(
                        "{raw:?} has {fields} fields; expected 5 (minute hour day month weekday)"
                    ),
                ));
            }
            let cron = parse_shared(&raw).map_err(|e| p.invalid(key, format!("{raw:?}: {e}")))?;
            Ok((raw, cron))
        };
        let (start_raw, start) = schedule("start")?;
        let (end_raw, end) = schedule("end")?;
        if start_raw.split_whitespace().eq(end_raw.split_whitespace()) {
            return Err(p.invalid("end", "start and end must differ"));
        }
        let raw = p.required_text("desiredReplicas", M)?;
        let desired_replicas = raw.parse::<i64>().ok().filter(|n| *n != 0).ok_or_else(|| {
            p.invalid(
                "desiredReplicas",
                format!("{raw:?} is not a non-zero integer"),
            )
        })?;
        Ok(CronConfig {
            timezone,
            start,
            end,
            desired_replicas,
        })
    }

    /// Whether `now` is inside the window: the next `end` comes before the next `start`.
    pub fn is_inside(&self, now: Timestamp) -> Result<bool, String> {
        let here = At(now.to_zoned_datetime(self.timezone.clone()));
        let next = |c: &croner::Cron| {
            c.find_next_occurrence(&here, false)
                .map(|z| z.0.timestamp())
                .map_err(|e| e.to_string())
        };
        Ok(next(&self.end)? < next(&self.start)?)
    }

    /// The value at `now`: desiredReplicas inside the window, 0 outside.
    pub fn value_at(&self, now: Timestamp) -> Result<(f64, bool), String> {
        let inside = self.is_inside(now)?;
        #[allow(clippy::cast_precision_loss)] // replica counts are far below 2^52
        let v = if inside {
            self.desired_replicas as f64
        } else {
            0.0
        };
        Ok((v, inside))
    }
}

/// The `cron` trigger.
#[derive(Debug)]
pub struct CronScaler {
    id: TriggerId,
    name: String,
    target: Target,
    config: CronConfig,
}

impl CronScaler {
    /// Parses the trigger; no I/O.
    pub fn new(p: &TriggerParams) -> Result<Self, ParamError> {
        Ok(CronScaler {
            id: p.id.clone(),
            name: external_name(p)?,
            // Upstream's target is fixed at 1: the value is the replica count itself.
            target: Target::of(p, 1.0)?,
            config: CronConfig::parse(p)?,
        })
    }
}

#[async_trait::async_trait]
impl Scaler for CronScaler {
    fn id(&self) -> &TriggerId {
        &self.id
    }

    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec::External {
            name: self.name.clone(),
            target: self.target,
        }])
    }

    async fn measure(&self, _metric: &str, now: Timestamp) -> Result<Measurement, ScalerError> {
        let (value, active) = self
            .config
            .value_at(now)
            .map_err(|e| ScalerError::BadResponse {
                trigger: self.id.clone(),
                target: "schedule".into(),
                detail: e,
            })?;
        Ok(Measurement {
            values: vec![MetricValue {
                name: self.name.clone(),
                value,
            }],
            active,
        })
    }
}

/// A zoned instant croner can search over (croner's own `jiff` support is for jiff 0.2; we
/// use jiff 1).
#[derive(Debug, Clone)]
struct At(ZonedDateTime);

impl CronDateTime for At {
    fn to_civil(&self) -> CivilDateTime {
        let d = self.0.datetime();
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(
                i32::from(d.year()),
                u32::try_from(d.month()).unwrap_or(1),
                u32::try_from(d.day()).unwrap_or(1),
            ),
            CivilTime::from_parts_unchecked(
                u32::try_from(d.hour()).unwrap_or(0),
                u32::try_from(d.minute()).unwrap_or(0),
                u32::try_from(d.second()).unwrap_or(0),
            ),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(u32::from(
            self.0.weekday().to_sunday_zero_offset().unsigned_abs(),
        ))
    }

    fn resolve_civil(
        &self,
        civil: CivilDateTime,
    ) -> Result<Resolution<Self>, croner::errors::CronError> {
        let bad = || croner::errors::CronError::InvalidDate;
        let small = |v: u32| i8::try_from(v).map_err(|_| bad());
        let dt = jiff::civil::DateTime::new(
            i16::try_from(civil.date().year()).map_err(|_| bad())?,
            small(civil.date().month())?,
            small(civil.date().day())?,
            small(civil.time().hour())?,
            small(civil.time().minute())?,
            small(civil.time().second())?,
            0,
        )
        .map_err(|_| bad())?;
        let amb = self.0.time_zone().to_ambiguous_zoned_datetime(dt);
        let invalid = |_| croner::errors::CronError::InvalidTime;
        Ok(match amb.offset() {
            AmbiguousOffset::Unambiguous { .. } => {
                Resolution::Single(At(amb.unambiguous().map_err(invalid)?))
            }
            AmbiguousOffset::Fold { .. } => Resolution::Ambiguous(
                At(amb.clone().earlier().map_err(invalid)?),
                At(amb.later().map_err(invalid)?),
            ),
            AmbiguousOffset::Gap { .. } => Resolution::Gap,
        })
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(SignedDuration::from_secs(seconds))
            .ok()
            .map(At)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.timestamp().cmp(&other.0.timestamp())
    }
}

/// Whether a five-field schedule fires at all: at some minute, some hour, and on some day of
/// 2001–2028. Those 28 years hold every kind of year the Gregorian calendar has (the 7 first
/// weekdays, leap or not), so a date and weekday pattern no day of theirs fits fits no day ever
/// (February 31st, `,` for the minutes).
fn fires_ever(p: &croner::CronPattern) -> bool {
    if !(0..60).any(|m| matches!(p.minute_match(m), Ok(true)))
        || !(0..24).any(|h| matches!(p.hour_match(h), Ok(true)))
    {
        return false;
    }
    const WEEK: [Weekday; 7] = [
        Weekday::Sunday,
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
    ];
    // 2001-01-01 was a Monday.
    let mut weekday = 1;
    for year in 2001..2029 {
        for month in 1..=12 {
            let month_fits = matches!(p.month_match(month), Ok(true));
            let days = CivilDate::from_parts_unchecked(year, month, 1).days_in_month();
            for day in 1..=days {
                if month_fits && matches!(p.day_match(year, month, day, WEEK[weekday]), Ok(true)) {
                    return true;
                }
                weekday = (weekday + 1) % 7;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> TriggerParams {
        let md = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TriggerParams::new("cron", 0, &md)
    }

    fn nine_to_five() -> CronConfig {
        CronConfig::parse(&params(&[
            ("timezone", "Europe/Paris"),
            ("start", "0 9 * * 1-5"),
            ("end", "0 17 * * 1-5"),
            ("desiredReplicas", "10"),
        ]))
        .unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_schedule_that_never_fires_is_refused() {
        for never in ["0 0 31 2 *", ", 18 * * 1-5", "0 0 30 2 *"] {
            let e = CronConfig::parse(&params(&[
                ("timezone", "Europe/Paris"),
                ("start", "0 9 * * 1-5"),
                ("end", never),
                ("desiredReplicas", "10"),
            ]));
            let e = e.expect_err(never).to_string();
            assert!(e.contains("never fires"), "{never}: {e}");
        }
        // Rare but real: February 29th; the last day of a month; the second Monday.
        for rare in ["0 0 29 2 *", "0 0 L * *", "0 0 * * 1#2"] {
            let p = CronParser::builder()
                .seconds(Seconds::Disallowed)
                .build()
                .parse(rare)
                .unwrap();
            assert!(fires_ever(&p.pattern), "{rare}");
        }
    }

    #[test]
    fn inside_the_window_in_its_time_zone() {
        let c = nine_to_five();
        // Wednesday 2026-03-04: 10:00 in Paris is 09:00 UTC.
        assert_eq!(
            c.value_at(ts("2026-03-04T09:00:00Z")).unwrap(),
            (10.0, true)
        );
        // 08:30 Paris = 07:30 UTC: before the window.
        assert_eq!(
            c.value_at(ts("2026-03-04T07:30:00Z")).unwrap(),
            (0.0, false)
        );
        // 17:30 Paris: after.
        assert_eq!(
            c.value_at(ts("2026-03-04T16:30:00Z")).unwrap(),
            (0.0, false)
        );
        // Saturday: closed all day.
        assert_eq!(
            c.value_at(ts("2026-03-07T10:00:00Z")).unwrap(),
            (0.0, false)
        );
    }

    #[test]
    fn window_across_a_daylight_saving_change() {
        let c = nine_to_five();
        // Monday 2026-03-30, after the switch to CEST (UTC+2): 09:30 Paris = 07:30 UTC.
        assert!(c.is_inside(ts("2026-03-30T07:30:00Z")).unwrap());
        assert!(!c.is_inside(ts("2026-03-30T06:30:00Z")).unwrap());
    }

    #[test]
    fn window_across_midnight() {
        let c = CronConfig::parse(&params(&[
            ("timezone", "UTC"),
            ("start", "0 22 * * *"),
            ("end", "0 6 * * *"),
            ("desiredReplicas", "3"),
        ]))
        .unwrap();
        assert!(c.is_inside(ts("2026-01-01T23:00:00Z")).unwrap());
        assert!(c.is_inside(ts("2026-01-02T05:59:00Z")).unwrap());
        assert!(!c.is_inside(ts("2026-01-02T12:00:00Z")).unwrap());
    }

    #[test]
    fn validation_names_the_parameter() {
        let base = [
            ("timezone", "UTC"),
            ("start", "0 9 * * *"),
            ("end", "0 17 * * *"),
            ("desiredReplicas", "2"),
        ];
        let with = |k: &str, v: &str| {
            let mut p: Vec<(&str, &str)> = base.iter().copied().filter(|(x, _)| *x != k).collect();
            if !v.is_empty() {
                p.push((k, v));
            }
            CronConfig::parse(&params(&p)).unwrap_err().to_string()
        };
        assert!(with("timezone", "Mars/Base").contains("invalid parameter timezone"));
        assert!(with("start", "0 9 * *").contains("invalid parameter start"));
        assert!(with("end", "0 9 * * *").contains("start and end must differ"));
        assert!(with("desiredReplicas", "0").contains("invalid parameter desiredReplicas"));
        assert_eq!(
            with("desiredReplicas", ""),
            "cron trigger 0: missing required parameter desiredReplicas"
        );
    }

    #[tokio::test]
    async fn metric_name_and_fixed_target_of_one() {
        let s = CronScaler::new(&params(&[
            ("timezone", "Europe/Paris"),
            ("start", "0 9 * * 1-5"),
            ("end", "0 17 * * 1-5"),
            ("desiredReplicas", "10"),
        ]))
        .unwrap();
        let specs = s.metric_specs().await.unwrap();
        assert_eq!(
            specs,
            vec![MetricSpec::External {
                name: "s0-cron-Europe-Paris-09xx1-5-017xx1-5".into(),
                target: Target::AverageValue(1.0),
            }]
        );
    }
}
