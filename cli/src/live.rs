//! Live-traffic commands (toxi's own, never in `toxiproxy-cli`'s help pages):
//! `connections <proxy>`, `kill <proxy> <id> [--reset]` and `events`.

use std::io::Write;

use toxi::client::{Client, Connection, Event};

use crate::args::Parsed;
use crate::context::Outcome;
use crate::tabwriter;

fn json_output(parsed: &Parsed) -> Result<bool, Outcome> {
    match parsed.string("output") {
        "" | "text" | "table" => Ok(false),
        "json" => Ok(true),
        other => Err(Outcome::fail(format!(
            "Unknown output format '{other}': use text or json.\n"
        ))),
    }
}

/// `connections <proxy> [-o json]`: a table on a terminal, tab-separated lines otherwise.
pub async fn connections(client: &Client, parsed: &Parsed, tty: bool) -> Outcome {
    let name = parsed.first();
    if name.is_empty() {
        return Outcome::fail("Proxy name is required as the first argument.\n");
    }
    let json = match json_output(parsed) {
        Ok(j) => j,
        Err(o) => return o,
    };
    match client.connections(name).await {
        Err(e) => Outcome::fail(format!("Failed to list connections of {name}: {e}\n")),
        Ok(conns) if json => {
            Outcome::print(serde_json::to_string_pretty(&conns).unwrap_or_default() + "\n")
        }
        Ok(conns) => Outcome::print(connections_text(&conns, tty)),
    }
}

/// One line per connection: id, client, opened at, bytes up, bytes down, toxics applied.
pub fn connections_text(conns: &[Connection], tty: bool) -> String {
    let mut text = String::new();
    if tty {
        text.push_str("ID\tCLIENT\tOPENED\tUPSTREAM\tDOWNSTREAM\tTOXICS\n");
    }
    for c in conns {
        let applied: Vec<&str> = c
            .toxics
            .iter()
            .filter(|(_, on)| **on)
            .map(|(n, _)| n.as_str())
            .collect();
        let applied = if applied.is_empty() {
            "-".to_owned()
        } else {
            applied.join(",")
        };
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{applied}\n",
            c.id, c.client, c.opened_at, c.bytes.upstream, c.bytes.downstream
        ));
    }
    if tty {
        if conns.is_empty() {
            return "No open connections\n".to_owned();
        }
        return tabwriter::align(&text.replace('\n', "\t\n"), 1, 2)
            .lines()
            .map(|l| l.trim_end().to_owned() + "\n")
            .collect();
    }
    text
}

/// `kill <proxy> <id> [--reset]`.
pub async fn kill(client: &Client, parsed: &Parsed) -> Outcome {
    let name = parsed.first();
    let id = parsed.positionals.get(1).map(String::as_str).unwrap_or("");
    if name.is_empty() || id.is_empty() {
        return Outcome::fail("Usage: kill <proxyName> <connectionId> [--reset]\n");
    }
    let Ok(num) = id.parse::<u64>() else {
        return Outcome::fail(format!("Connection id must be a number, got '{id}'.\n"));
    };
    let reset = parsed.bool("reset");
    match client.kill(name, num, reset).await {
        Err(e) => Outcome::fail(format!("Failed to close connection {id} of {name}: {e}\n")),
        Ok(()) => Outcome::print(format!(
            "Closed connection {id} of {name}{}\n",
            if reset { " with RST" } else { "" }
        )),
    }
}

/// `events [-o json]`: follows the stream, one line per event, until it ends.
pub async fn events(client: &Client, parsed: &Parsed) -> Outcome {
    let json = match json_output(parsed) {
        Ok(j) => j,
        Err(o) => return o,
    };
    let mut stream = match client.events().await {
        Ok(s) => s,
        Err(e) => return Outcome::fail(format!("Failed to follow events: {e}\n")),
    };
    let mut out = std::io::stdout();
    loop {
        match stream.next().await {
            Ok(Some(ev)) => {
                let line = if json {
                    ev.json.to_string()
                } else {
                    event_line(&ev)
                };
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return Outcome::default(); // stdout closed (e.g. `| head`)
                }
            }
            Ok(None) => return Outcome::default(),
            Err(e) => return Outcome::fail(format!("Event stream failed: {e}\n")),
        }
    }
}

/// `2026-12-01T21:30:00.123Z toxic.added web toxic=lat` and the like.
pub fn event_line(ev: &Event) -> String {
    let mut line = format!("{} {}", ev.time, ev.kind);
    if let Some(p) = &ev.proxy {
        line.push(' ');
        line.push_str(p);
    }
    if let Some(obj) = ev.json.as_object() {
        for (k, v) in obj {
            if matches!(k.as_str(), "time" | "type" | "proxy" | "data") {
                continue;
            }
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            line.push_str(&format!(" {k}={v}"));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use toxi::client::ConnectionBytes;

    fn conn() -> Connection {
        Connection {
            id: 3,
            client: "127.0.0.1:5000".into(),
            opened_at: "2026-12-01T21:30:00.123Z".into(),
            bytes: ConnectionBytes {
                upstream: 10,
                downstream: 2000,
            },
            toxics: [("lat".to_owned(), true), ("cut".to_owned(), false)].into(),
        }
    }

    #[test]
    fn tab_separated_without_a_terminal() {
        assert_eq!(
            connections_text(&[conn()], false),
            "3\t127.0.0.1:5000\t2026-12-01T21:30:00.123Z\t10\t2000\tlat\n"
        );
    }

    #[test]
    fn a_table_on_a_terminal() {
        let t = connections_text(&[conn()], true);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID  CLIENT"), "{t}");
        assert!(lines[1].starts_with("3   127.0.0.1:5000"), "{t}");
    }

    #[test]
    fn event_lines() {
        let json: serde_json::Value = serde_json::from_str(
            r#"{"time":"T","type":"connection.closed","proxy":"web","id":4,"reason":"api"}"#,
        )
        .unwrap();
        let ev = Event {
            time: "T".into(),
            kind: "connection.closed".into(),
            proxy: Some("web".into()),
            json,
        };
        assert_eq!(event_line(&ev), "T connection.closed web id=4 reason=api");
    }
}
