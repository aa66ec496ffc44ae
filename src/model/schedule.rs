//! Durations of toxi's own fields and a toxic's `schedule` (beyond.md §1.1).
//!
//! A duration is an integer number of milliseconds or a Go duration string (`"250ms"`,
//! `"1.5s"`, `"2m30s"`); responses echo it as integer milliseconds. Negative, unparseable
//! and overflowing values (past Go's largest `time.Duration`, about 292 years) are errors
//! that name the field.
//!
//! A [`Schedule`] is a pure function of the time since its origin (when the toxic was
//! added or its schedule last set): [`Schedule::phase`] says whether the toxic is active,
//! until when, and whether it has expired (a `duration` without `every` ends the toxic).

use std::time::Duration;

use crate::model::json::{self, Json};

/// Go's largest `time.Duration`, in milliseconds.
pub const MAX_MS: u64 = (i64::MAX as u64) / 1_000_000;

/// A toxic's schedule, in milliseconds, plus its current state (responses only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Schedule {
    /// The toxic passes data untouched until this long after its origin.
    pub start_after: u64,
    /// How long it is active (per period with `every`); `None` is forever.
    pub duration: Option<u64>,
    /// The period of a flapping toxic; needs `duration < every`.
    pub every: Option<u64>,
    /// Whether the toxic acts now. Filled in by the registry for responses; ignored on input
    /// and in comparisons of schedules ([`Schedule::same_spec`]).
    pub active: bool,
}

/// Where a schedule stands at some time after its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Active (`true`) or not, until the given offset from the origin (`None`: for good).
    Steady(bool, Option<Duration>),
    /// The `duration` of a one-shot schedule has ended: the toxic removes itself.
    Expired,
}

impl Schedule {
    /// A schedule that removes its toxic after `duration` ms.
    pub fn lasting(duration: u64) -> Schedule {
        Schedule {
            duration: Some(duration),
            ..Schedule::default()
        }
    }

    /// Equal start, duration and period (the state does not count).
    pub fn same_spec(&self, other: &Schedule) -> bool {
        (self.start_after, self.duration, self.every)
            == (other.start_after, other.duration, other.every)
    }

    /// The rules across fields: `every` needs `duration`, and `duration < every`.
    pub fn validate(&self) -> Result<(), String> {
        match (self.duration, self.every) {
            (None, Some(_)) => Err("schedule.every needs schedule.duration".to_owned()),
            (Some(d), Some(e)) if d >= e => Err(format!(
                "schedule.duration ({d} ms) must be shorter than schedule.every ({e} ms)"
            )),
            _ => Ok(()),
        }
    }

    /// The phase `elapsed` after the origin.
    pub fn phase(&self, elapsed: Duration) -> Phase {
        let ms = |v: u64| Duration::from_millis(v);
        let start = ms(self.start_after);
        if elapsed < start {
            return Phase::Steady(false, Some(start));
        }
        let into = elapsed - start;
        match (self.duration, self.every) {
            (None, _) => Phase::Steady(true, None),
            (Some(d), None) => {
                if into < ms(d) {
                    Phase::Steady(true, Some(start.saturating_add(ms(d))))
                } else {
                    Phase::Expired
                }
            }
            (Some(d), Some(every)) => {
                let every_ns = u128::from(every.max(1)) * 1_000_000;
                let periods = into.as_nanos() / every_ns;
                let period_start = start.saturating_add(nanos(periods * every_ns));
                let in_period = elapsed - period_start;
                if in_period < ms(d) {
                    Phase::Steady(true, Some(period_start.saturating_add(ms(d))))
                } else {
                    Phase::Steady(false, Some(period_start.saturating_add(ms(every))))
                }
            }
        }
    }

    /// Caps a schedule for `-max-toxic-duration`: a toxic without a `duration` gets
    /// `max`; a longer one is an error naming the field.
    pub fn capped(schedule: Option<Schedule>, max: u64) -> Result<Schedule, String> {
        let mut s = schedule.unwrap_or_default();
        match s.duration {
            None => s.duration = Some(max),
            Some(d) if d > max => {
                return Err(format!(
                    "schedule.duration ({d} ms) is longer than the server's -max-toxic-duration ({max} ms)"
                ))
            }
            Some(_) => {}
        }
        s.validate()?;
        Ok(s)
    }

    /// Appends `{"start_after":…,"duration":…,"every":…}` (ms; unset fields left out).
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"start_after\":");
        out.push_str(&self.start_after.to_string());
        if let Some(d) = self.duration {
            out.push_str(",\"duration\":");
            out.push_str(&d.to_string());
        }
        if let Some(e) = self.every {
            out.push_str(",\"every\":");
            out.push_str(&e.to_string());
        }
        out.push('}');
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

/// Decodes a `schedule` value: an object of durations (keys matched as Go matches them,
/// unknown keys ignored, `null` members left unset), validated. A `null` schedule is `None`.
pub fn decode(v: &Json) -> Result<Option<Schedule>, String> {
    let members = match v {
        Json::Null => return Ok(None),
        Json::Object(members) => members,
        other => {
            return Err(format!(
                "schedule must be an object of durations, not {}",
                other.kind()
            ))
        }
    };
    let mut s = Schedule::default();
    for (key, v) in members {
        if json::key_is(key, "start_after") {
            if let Some(ms) = duration_ms(v, "schedule.start_after")? {
                s.start_after = ms;
            }
        } else if json::key_is(key, "duration") {
            s.duration = duration_ms(v, "schedule.duration")?.or(s.duration);
        } else if json::key_is(key, "every") {
            s.every = duration_ms(v, "schedule.every")?.or(s.every);
        }
    }
    s.validate()?;
    Ok(Some(s))
}

/// One duration field: integer milliseconds or a Go duration string; `null` is `None`.
pub fn duration_ms(v: &Json, field: &str) -> Result<Option<u64>, String> {
    let bad = |what: &str| {
        Err(format!(
            "{field}: {what} (want milliseconds or a Go duration such as \"1.5s\")"
        ))
    };
    match v {
        Json::Null => Ok(None),
        Json::Number(text) => {
            if text.starts_with('-') {
                return bad(&format!("negative duration {text}"));
            }
            match text.parse::<u64>() {
                Ok(ms) if ms <= MAX_MS => Ok(Some(ms)),
                Ok(_) => bad(&format!("duration {text} overflows")),
                Err(_) if text.bytes().all(|b| b.is_ascii_digit()) => {
                    bad(&format!("duration {text} overflows"))
                }
                Err(_) => bad(&format!("duration {text} is not a whole number of ms")),
            }
        }
        Json::String(s) => match parse_go_duration(s) {
            Ok(ns) if ns < 0 => bad(&format!("negative duration {}", json::quote(s))),
            Ok(ns) => Ok(Some(ns as u64 / 1_000_000)),
            Err(GoDurationError::Overflow) => {
                bad(&format!("duration {} overflows", json::quote(s)))
            }
            Err(GoDurationError::Invalid) => bad(&format!("invalid duration {}", json::quote(s))),
        },
        other => bad(&format!("a duration cannot be a JSON {}", other.kind())),
    }
}

/// Why a Go duration string did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoDurationError {
    Invalid,
    Overflow,
}

/// Go's `time.ParseDuration`, in nanoseconds: an optional sign, then one or more decimal
/// numbers each with a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`); `"0"` alone
/// needs no unit. The result must fit an `i64`.
pub fn parse_go_duration(s: &str) -> Result<i64, GoDurationError> {
    use GoDurationError::{Invalid, Overflow};
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(Invalid);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_end);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(end)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(Invalid);
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, tail) = after.split_at(unit_end);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(Invalid),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| Overflow)?
        };
        let mut value = whole.checked_mul(scale).ok_or(Overflow)?;
        // The fraction, digit by digit, as Go does (digits beyond precision are dropped).
        let mut unit_part = scale;
        for d in frac_part.bytes() {
            unit_part /= 10;
            if unit_part == 0 {
                break;
            }
            value += u128::from(d - b'0') * unit_part;
        }
        total = total.checked_add(value).ok_or(Overflow)?;
        if total > i64::MAX as u128 + u128::from(negative) {
            return Err(Overflow);
        }
        rest = tail;
    }
    let total = total as i128;
    Ok((if negative { -total } else { total }) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("2m30s"), Ok(150_000_000_000));
        assert_eq!(parse_go_duration("1h"), Ok(3_600_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("1µs"), Ok(1000));
        assert_eq!(parse_go_duration("-3s"), Ok(-3_000_000_000));
        for bad in ["", "5", "s", "1x", "1.s.", ".s", "-", "1 s"] {
            assert_eq!(
                parse_go_duration(bad),
                Err(GoDurationError::Invalid),
                "{bad}"
            );
        }
        assert_eq!(parse_go_duration("2562047h47m16.854775807s"), Ok(i64::MAX));
        assert_eq!(
            parse_go_duration("2562048h"),
            Err(GoDurationError::Overflow)
        );
        assert_eq!(
            parse_go_duration("99999999999999999999999999999999999999999h"),
            Err(GoDurationError::Overflow)
        );
    }

    #[test]
    fn duration_fields() {
        let num = |s: &str| Json::Number(s.to_owned());
        let st = |s: &str| Json::String(s.to_owned());
        assert_eq!(duration_ms(&num("250"), "f"), Ok(Some(250)));
        assert_eq!(duration_ms(&st("1.5s"), "f"), Ok(Some(1500)));
        assert_eq!(duration_ms(&Json::Null, "f"), Ok(None));
        for bad in [
            num("-1"),
            num("1.5"),
            num("1e3"),
            num("99999999999999999999"),
        ] {
            let e = duration_ms(&bad, "schedule.every").unwrap_err();
            assert!(e.starts_with("schedule.every: "), "{e}");
        }
        for bad in [st("-1s"), st("soon"), st("3000000h"), Json::Bool(true)] {
            let e = duration_ms(&bad, "schedule.duration").unwrap_err();
            assert!(e.starts_with("schedule.duration: "), "{e}");
        }
        assert!(duration_ms(&num(&(MAX_MS + 1).to_string()), "f").is_err());
    }

    #[test]
    fn decode_and_validate() {
        let doc =
            json::parse(br#"{"Start_After":"5s","duration":30000,"every":"1m","x":1}"#).unwrap();
        let s = decode(&doc).unwrap().unwrap();
        assert_eq!(
            (s.start_after, s.duration, s.every),
            (5000, Some(30000), Some(60000))
        );
        assert_eq!(decode(&Json::Null), Ok(None));
        let err = |body: &str| decode(&json::parse(body.as_bytes()).unwrap()).unwrap_err();
        assert!(err(r#"{"every":1000}"#).contains("schedule.every needs schedule.duration"));
        assert!(err(r#"{"duration":1000,"every":1000}"#).contains("shorter than"));
        assert!(err(r#"{"start_after":-1}"#).starts_with("schedule.start_after"));
        assert!(err("[1]").starts_with("schedule must be an object"));
    }

    #[test]
    fn phases() {
        let once = Schedule {
            start_after: 100,
            duration: Some(50),
            ..Schedule::default()
        };
        assert_eq!(once.phase(ms(0)), Phase::Steady(false, Some(ms(100))));
        assert_eq!(once.phase(ms(100)), Phase::Steady(true, Some(ms(150))));
        assert_eq!(once.phase(ms(150)), Phase::Expired);
        let forever = Schedule::default();
        assert_eq!(forever.phase(ms(0)), Phase::Steady(true, None));
        let flap = Schedule {
            start_after: 10,
            duration: Some(30),
            every: Some(100),
            active: false,
        };
        assert_eq!(flap.phase(ms(5)), Phase::Steady(false, Some(ms(10))));
        assert_eq!(flap.phase(ms(10)), Phase::Steady(true, Some(ms(40))));
        assert_eq!(flap.phase(ms(39)), Phase::Steady(true, Some(ms(40))));
        assert_eq!(flap.phase(ms(40)), Phase::Steady(false, Some(ms(110))));
        assert_eq!(flap.phase(ms(1010)), Phase::Steady(true, Some(ms(1040))));
        let huge = Schedule::lasting(MAX_MS);
        assert_eq!(huge.phase(ms(1)), Phase::Steady(true, Some(ms(MAX_MS))));
    }

    #[test]
    fn capping() {
        assert_eq!(Schedule::capped(None, 1000).unwrap().duration, Some(1000));
        assert!(Schedule::capped(Some(Schedule::lasting(2000)), 1000).is_err());
        let flap = Schedule {
            duration: None,
            every: None,
            start_after: 5,
            active: false,
        };
        assert_eq!(
            Schedule::capped(Some(flap), 1000).unwrap().duration,
            Some(1000)
        );
    }

    #[test]
    fn json_shows_only_what_is_set() {
        let mut out = String::new();
        Schedule::lasting(300_000).write_json(&mut out);
        assert_eq!(out, r#"{"start_after":0,"duration":300000}"#);
    }
}
