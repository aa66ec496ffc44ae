//! `GET /proxies/{proxy}/connections` and `DELETE /proxies/{proxy}/connections/{id}`
//! (beyond.md §3.1).

use std::sync::atomic::Ordering;

use super::handlers::Reply;
use super::ApiState;
use crate::events::rfc3339_millis;
use crate::model::json::write_str;
use crate::registry::ConnectionView;

/// The open connections, oldest first.
pub fn index(state: &ApiState, proxy: &str) -> Reply {
    match state.registry.connections(proxy) {
        Ok(conns) => Reply::json(200, connections_json(&conns)),
        Err(e) => e.into(),
    }
}

/// Closes one connection: FIN, or RST with `?reset=true`. 204, or 404 for an unknown id.
pub fn kill(state: &ApiState, proxy: &str, id: &str, query: Option<&str>) -> Reply {
    let reset = match reset_param(query) {
        Ok(r) => r,
        Err(value) => {
            return Reply::error(
                &format!("reset: expected true or false, got {value:?}"),
                400,
            )
        }
    };
    let found = match id.parse::<u64>() {
        Ok(id) => state.registry.kill(proxy, id, reset),
        Err(_) => Ok(false),
    };
    match found {
        Ok(true) => Reply::empty(204),
        Ok(false) => Reply::error("connection not found", 404),
        Err(e) => e.into(),
    }
}

/// The `reset` query parameter (absent means false).
fn reset_param(query: Option<&str>) -> Result<bool, String> {
    let Some(q) = query else { return Ok(false) };
    let mut reset = false;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        if k == "reset" {
            reset = match v {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                other => return Err(other.to_owned()),
            };
        }
    }
    Ok(reset)
}

/// `[{"id":…,"client":…,"opened_at":…,"bytes":{…},"toxics":{…}},…]`
pub fn connections_json(conns: &[ConnectionView]) -> String {
    let mut out = String::from("[");
    for (i, v) in conns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let c = &v.conn;
        out.push_str(&format!("{{\"id\":{},\"client\":", c.id));
        write_str(&mut out, &c.client.to_string());
        out.push_str(",\"opened_at\":");
        write_str(&mut out, &rfc3339_millis(c.opened_at));
        out.push_str(&format!(
            ",\"bytes\":{{\"upstream\":{},\"downstream\":{}}},\"toxics\":{{",
            c.bytes[0].load(Ordering::Relaxed),
            c.bytes[1].load(Ordering::Relaxed)
        ));
        for (j, (name, applies)) in v.toxics.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            write_str(&mut out, name);
            out.push_str(if *applies { ":true" } else { ":false" });
        }
        out.push_str("}}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_parameter() {
        assert_eq!(reset_param(None), Ok(false));
        assert_eq!(reset_param(Some("reset=true")), Ok(true));
        assert_eq!(reset_param(Some("x=1&reset=1")), Ok(true));
        assert_eq!(reset_param(Some("reset=false")), Ok(false));
        assert_eq!(reset_param(Some("reset")), Ok(true));
        assert!(reset_param(Some("reset=maybe")).is_err());
    }
}
