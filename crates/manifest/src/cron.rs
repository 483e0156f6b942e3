//! Cron schedules as Karpenter budgets and KEDA's cron trigger write them: five fields, or a
//! `@daily`-style macro. Parsed by `croner`, a maintained crate, never by hand.

use croner::parser::{CronParser, Seconds};

/// Why a schedule is not a five-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// Parses a five-field cron expression or macro.
pub fn parse(expr: &str) -> Result<croner::Cron, CronError> {
    let fields = expr.split_whitespace().count();
    if !expr.trim_start().starts_with('@') && fields != 5 {
        return Err(CronError(format!("has {fields} fields, expected 5")));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| CronError(e.to_string()))
}

/// Whether `tz` names an IANA time zone (e.g. `Europe/Paris`, `UTC`).
pub fn is_time_zone(tz: &str) -> bool {
    jiff::tz::TimeZone::get(tz).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_fields_and_macros_parse() {
        assert!(parse("0 9 * * 1-5").is_ok());
        assert!(parse("@daily").is_ok());
        assert!(parse("*/15 * * * *").is_ok());
    }

    #[test]
    fn wrong_shapes_are_rejected() {
        assert!(parse("0 9 * *").is_err());
        assert!(parse("0 0 9 * * 1").is_err());
        assert!(parse("61 * * * *").is_err());
    }

    #[test]
    fn time_zones() {
        assert!(is_time_zone("Europe/Paris"));
        assert!(is_time_zone("UTC"));
        assert!(!is_time_zone("Mars/Olympus"));
    }
}
