//! The one copy of each Go-compatibility helper, for the server and the client alike (this
//! module is not behind the `server` feature): how Go quotes a byte in a JSON error, prints
//! an OS error, splits and joins `host:port`, parses booleans and durations, and parses
//! command-line flags ([`flag`]).

pub mod flag;

/// Go's `encoding/json` `quoteChar`: a byte between single quotes, escaped as
/// `strconv.Quote` escapes the rune with that value (bytes >= 0x80 are the runes
/// U+0080..U+00FF; the unprintable ones, C1 controls, NBSP and the soft hyphen, become
/// `\u00XX`, the others are shown as the character).
pub fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        b'\\' => r"'\\'".to_owned(),
        0x07 => r"'\a'".to_owned(),
        0x08 => r"'\b'".to_owned(),
        0x0c => r"'\f'".to_owned(),
        b'\n' => r"'\n'".to_owned(),
        b'\r' => r"'\r'".to_owned(),
        b'\t' => r"'\t'".to_owned(),
        0x0b => r"'\v'".to_owned(),
        0x20..=0x7e => format!("'{}'", c as char),
        0x00..=0x1f | 0x7f => format!("'\\x{c:02x}'"),
        0x80..=0x9f | 0xa0 | 0xad => format!("'\\u{c:04x}'"),
        _ => format!("'{}'", c as char),
    }
}

/// An OS error as Go prints it: `connection refused` rather than
/// `Connection refused (os error 111)`.
pub fn errno_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    lower_first(text)
}

/// `s` with its first character in lower case (Go's error texts start in lower case).
pub fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Where a `host[:port]` string went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SplitError<'a> {
    MissingBracket,
    /// Text after `]` that is not `:port`.
    AfterBracket(&'a str),
}

/// Splits `[v6]`, `[v6]:port`, `host` or `host:port` (at the last colon) into the host and
/// the port, if any.
fn split_host_opt_port(s: &str) -> Result<(&str, Option<&str>), SplitError<'_>> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']').ok_or(SplitError::MissingBracket)?;
        let after = &rest[end + 1..];
        return match after.strip_prefix(':') {
            Some(port) => Ok((&rest[..end], Some(port))),
            None if after.is_empty() => Ok((&rest[..end], None)),
            None => Err(SplitError::AfterBracket(after)),
        };
    }
    Ok(match s.rfind(':') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    })
}

/// Go's `net.SplitHostPort`, with its error texts (`address A: missing port in address`).
pub fn split_host_port(addr: &str) -> Result<(&str, &str), String> {
    let missing = || format!("address {addr}: missing port in address");
    let too_many = || format!("address {addr}: too many colons in address");
    match split_host_opt_port(addr) {
        Ok((_, None)) | Err(SplitError::AfterBracket(_)) => Err(missing()),
        Err(SplitError::MissingBracket) => Err(format!("address {addr}: missing ']' in address")),
        Ok((host, Some(port))) => {
            let bracketed = addr.starts_with('[');
            if (bracketed && port.contains(':')) || (!bracketed && host.contains(':')) {
                Err(too_many())
            } else {
                Ok((host, port))
            }
        }
    }
}

/// The host and optional port of a URL's authority, as Go's `net/url` splits them
/// (`invalid port ":x" after host`, `missing ']' in host "[::1"`).
pub fn split_url_host(hostport: &str) -> Result<(&str, Option<&str>), String> {
    split_host_opt_port(hostport).map_err(|e| match e {
        SplitError::MissingBracket => format!("missing ']' in host {hostport:?}"),
        SplitError::AfterBracket(after) => format!("invalid port {after:?} after host"),
    })
}

/// Go's `net.JoinHostPort`: brackets around a host with a colon.
pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration` for non-negative durations: numbers with units (`ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`), possibly repeated (`1m30s`); a bare `0` is zero.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    if s == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_end].parse().ok()?;
        let unit_end = rest[num_end..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .map_or(rest.len(), |i| num_end + i);
        let scale = match &rest[num_end..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    std::time::Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn quotes_bytes_as_go() {
        assert_eq!(quote_char(b'U'), "'U'");
        assert_eq!(quote_char(b'\''), r"'\''");
        assert_eq!(quote_char(b'"'), "'\"'");
        assert_eq!(quote_char(b'\n'), r"'\n'");
        assert_eq!(quote_char(0x01), r"'\x01'");
        assert_eq!(quote_char(0x7f), r"'\x7f'");
        // strconv.Quote(string(rune(0x80))) is "\u0080"; U+00E9 is printable.
        assert_eq!(quote_char(0x80), r"'\u0080'");
        assert_eq!(quote_char(0xa0), r"'\u00a0'");
        assert_eq!(quote_char(0xad), r"'\u00ad'");
        assert_eq!(quote_char(0xe9), "'é'");
        assert_eq!(quote_char(0xff), "'ÿ'");
    }

    #[test]
    fn errno_texts() {
        let e = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(errno_text(&e), "connection refused");
        let e = std::io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(errno_text(&e), "address already in use");
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("a:1"), Ok(("a", "1")));
        assert_eq!(split_host_port(":1"), Ok(("", "1")));
        assert_eq!(split_host_port("[::1]:2"), Ok(("::1", "2")));
        for (addr, problem) in [
            ("a", "missing port in address"),
            ("[::1]", "missing port in address"),
            ("[::1", "missing ']' in address"),
            ("::1:2", "too many colons in address"),
            ("[::1]:2:3", "too many colons in address"),
        ] {
            assert_eq!(
                split_host_port(addr).unwrap_err(),
                format!("address {addr}: {problem}")
            );
        }
        assert_eq!(split_url_host("h"), Ok(("h", None)));
        assert_eq!(split_url_host("[::1]"), Ok(("::1", None)));
        assert_eq!(split_url_host("h:"), Ok(("h", Some(""))));
        assert_eq!(
            split_url_host("[::1]x").unwrap_err(),
            "invalid port \"x\" after host"
        );
        assert_eq!(join_host_port("::1", "8"), "[::1]:8");
        assert_eq!(join_host_port("h", "8"), "h:8");
    }

    #[test]
    fn bools_and_durations() {
        assert_eq!(parse_bool("T"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("2"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("1x"), None);
    }
}
