//! Toxic wire types: the stream (direction), the eight toxic kinds and their attributes.

use std::fmt;

/// Which way bytes flow through a link.
///
/// `Upstream` is client → server (requests), `Downstream` is server → client (responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Upstream,
    Downstream,
}

impl Direction {
    /// Parses a stream name case-insensitively, as the reference does.
    pub fn parse(s: &str) -> Option<Direction> {
        if s.eq_ignore_ascii_case("upstream") {
            Some(Direction::Upstream)
        } else if s.eq_ignore_ascii_case("downstream") {
            Some(Direction::Downstream)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        }
    }

    pub fn index(self) -> usize {
        match self {
            Direction::Upstream => 0,
            Direction::Downstream => 1,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A toxic's type and attributes. Every attribute defaults to 0, as in the reference.
///
/// Units: `latency`/`jitter`/`delay`/`timeout` in milliseconds, except `Slicer::delay`
/// which is in microseconds; `Bandwidth::rate` in KB/s (1 KB = 1000 bytes);
/// `average_size`/`size_variation`/`bytes` in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToxicKind {
    Latency {
        latency: i64,
        jitter: i64,
    },
    Bandwidth {
        rate: i64,
    },
    SlowClose {
        delay: i64,
    },
    Timeout {
        timeout: i64,
    },
    ResetPeer {
        timeout: i64,
    },
    Slicer {
        average_size: i64,
        size_variation: i64,
        delay: i64,
    },
    LimitData {
        bytes: i64,
    },
    Noop,
}

/// Every registered toxic type name, in a stable order.
pub const TOXIC_TYPES: [&str; 8] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "noop",
];

impl ToxicKind {
    /// The all-zero default for a registered type name (exact, case-sensitive match).
    pub fn default_for(type_name: &str) -> Option<ToxicKind> {
        Some(match type_name {
            "latency" => ToxicKind::Latency {
                latency: 0,
                jitter: 0,
            },
            "bandwidth" => ToxicKind::Bandwidth { rate: 0 },
            "slow_close" => ToxicKind::SlowClose { delay: 0 },
            "timeout" => ToxicKind::Timeout { timeout: 0 },
            "reset_peer" => ToxicKind::ResetPeer { timeout: 0 },
            "slicer" => ToxicKind::Slicer {
                average_size: 0,
                size_variation: 0,
                delay: 0,
            },
            "limit_data" => ToxicKind::LimitData { bytes: 0 },
            "noop" => ToxicKind::Noop,
            _ => return None,
        })
    }

    /// The wire `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::Noop => "noop",
        }
    }

    /// The Go struct name the reference reports in decode errors (`LatencyToxic`, ...).
    pub fn go_struct_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "LatencyToxic",
            ToxicKind::Bandwidth { .. } => "BandwidthToxic",
            ToxicKind::SlowClose { .. } => "SlowCloseToxic",
            ToxicKind::Timeout { .. } => "TimeoutToxic",
            ToxicKind::ResetPeer { .. } => "ResetToxic",
            ToxicKind::Slicer { .. } => "SlicerToxic",
            ToxicKind::LimitData { .. } => "LimitDataToxic",
            ToxicKind::Noop => "NoopToxic",
        }
    }

    /// Attribute names and values in the reference's JSON key order.
    pub fn attributes(&self) -> Vec<(&'static str, i64)> {
        match *self {
            ToxicKind::Latency { latency, jitter } => {
                vec![("latency", latency), ("jitter", jitter)]
            }
            ToxicKind::Bandwidth { rate } => vec![("rate", rate)],
            ToxicKind::SlowClose { delay } => vec![("delay", delay)],
            ToxicKind::Timeout { timeout } => vec![("timeout", timeout)],
            ToxicKind::ResetPeer { timeout } => vec![("timeout", timeout)],
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => vec![
                ("average_size", average_size),
                ("size_variation", size_variation),
                ("delay", delay),
            ],
            ToxicKind::LimitData { bytes } => vec![("bytes", bytes)],
            ToxicKind::Noop => vec![],
        }
    }

    /// A mutable reference to the named attribute (exact lower-case name), if the type has it.
    pub fn attribute_mut(&mut self, name: &str) -> Option<&mut i64> {
        match self {
            ToxicKind::Latency { latency, jitter } => match name {
                "latency" => Some(latency),
                "jitter" => Some(jitter),
                _ => None,
            },
            ToxicKind::Bandwidth { rate } => (name == "rate").then_some(rate),
            ToxicKind::SlowClose { delay } => (name == "delay").then_some(delay),
            ToxicKind::Timeout { timeout } | ToxicKind::ResetPeer { timeout } => {
                (name == "timeout").then_some(timeout)
            }
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => match name {
                "average_size" => Some(average_size),
                "size_variation" => Some(size_variation),
                "delay" => Some(delay),
                _ => None,
            },
            ToxicKind::LimitData { bytes } => (name == "bytes").then_some(bytes),
            ToxicKind::Noop => None,
        }
    }

    /// Rejects values that crash or wedge the reference (DECISIONS §2.2). The message names
    /// the attribute and its allowed range.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            ToxicKind::Bandwidth { rate } if rate < 0 => {
                Err("rate must be at least 0 (KB/s; 0 holds all data)".to_string())
            }
            ToxicKind::Slicer {
                average_size,
                size_variation,
                ..
            } => {
                if average_size < 1 {
                    Err("average_size must be at least 1".to_string())
                } else if !(0..=average_size).contains(&size_variation) {
                    Err(format!(
                        "size_variation must be between 0 and average_size ({average_size})"
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}
