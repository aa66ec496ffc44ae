//! What `list`, `inspect` and `toggle` print: the terminal tables with colours and hints, the
//! tab-separated rows for scripts, and JSON (`-o json`).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use toxi::client::{Proxy, Toxic};
use toxi::model::AttrValue;

pub const RED: &str = "\x1b[31m";
pub const GREEN: &str = "\x1b[32m";
pub const YELLOW: &str = "\x1b[33m";
pub const BLUE: &str = "\x1b[34m";
pub const PURPLE: &str = "\x1b[35m";
pub const NONE: &str = "\x1b[0m";

/// Colour codes only on a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub tty: bool,
}

impl Style {
    pub fn color(self, code: &'static str) -> &'static str {
        if self.tty {
            code
        } else {
            ""
        }
    }

    fn enabled_color(self, enabled: bool) -> &'static str {
        self.color(if enabled { GREEN } else { RED })
    }

    /// `\n{NONE}Hint: <text>\n`, on a terminal only.
    fn hint(self, out: &mut String, text: &str) {
        if self.tty {
            out.push('\n');
            out.push_str(NONE);
            out.push_str("Hint: ");
            out.push_str(text);
            out.push('\n');
        }
    }

    /// One table cell: the text, a tab, and on a terminal enough extra tabs to fill
    /// `tabs` tab stops (8 columns each).
    fn cell(self, out: &mut String, code: &'static str, text: &str, tabs: usize) {
        let extra = if self.tty {
            tabs.saturating_sub(text.len() / 8 + 1)
        } else {
            0
        };
        out.push_str(self.color(code));
        out.push_str(text);
        out.push_str(self.color(NONE));
        out.push('\t');
        out.push_str(&"\t".repeat(extra));
    }
}

fn enabled_text(enabled: bool) -> &'static str {
    if enabled {
        "enabled"
    } else {
        "disabled"
    }
}

/// `list`: a coloured table with a header and hints on a terminal, otherwise one
/// `name\tlisten\tupstream\tenabled|disabled\t<toxics>` row per proxy.
pub fn list(proxies: &BTreeMap<String, Proxy>, style: Style, prog: &str) -> String {
    let mut out = String::new();
    if style.tty {
        out.push_str(&format!(
            "{GREEN}Name\t\t\t{BLUE}Listen\t\t{YELLOW}Upstream\t\t{PURPLE}Enabled\t\t{RED}Toxics\n{NONE}"
        ));
        out.push_str(NONE);
        out.push_str(&"=".repeat(86));
        out.push('\n');
        if proxies.is_empty() {
            out.push_str(&format!("{RED}no proxies\n{NONE}"));
            style.hint(&mut out, &format!("create a proxy with `{prog} create`"));
            return out;
        }
    }
    for proxy in proxies.values() {
        let toxics = match proxy.toxics.len() {
            0 if style.tty => "None".to_string(),
            n => n.to_string(),
        };
        let name_color = if proxy.enabled { GREEN } else { RED };
        style.cell(&mut out, name_color, &proxy.name, 3);
        style.cell(&mut out, BLUE, &proxy.listen, 2);
        style.cell(&mut out, YELLOW, &proxy.upstream, 3);
        style.cell(&mut out, PURPLE, enabled_text(proxy.enabled), 2);
        out.push_str(style.color(RED));
        out.push_str(&toxics);
        out.push_str(style.color(NONE));
        out.push('\n');
    }
    style.hint(
        &mut out,
        &format!("inspect toxics with `{prog} inspect <proxyName>`"),
    );
    out
}

/// `inspect`: on a terminal a header and the toxics by direction; otherwise one row per
/// toxic and nothing at all for a proxy without toxics.
pub fn inspect(proxy: &Proxy, style: Style, prog: &str) -> String {
    let mut out = String::new();
    if !style.tty {
        for toxic in &proxy.toxics {
            toxic_row(&mut out, toxic, style);
        }
        return out;
    }
    out.push_str(&format!(
        "{PURPLE}Name: {NONE}{}\t{BLUE}Listen: {NONE}{}\t{YELLOW}Upstream: {NONE}{}",
        proxy.name, proxy.listen, proxy.upstream
    ));
    // toxi's own: only a proxy that is not plain TCP says so.
    if !proxy.protocol.is_tcp() {
        let protocol = proxy.protocol.as_str();
        out.push_str(&format!("\t{GREEN}Protocol: {NONE}{protocol}"));
    }
    out.push('\n');
    out.push_str(NONE);
    out.push_str(&"=".repeat(70));
    out.push('\n');
    if proxy.toxics.is_empty() {
        out.push_str(&format!("{RED}Proxy has no toxics enabled.\n{NONE}"));
    } else {
        // Exactly "upstream" goes up; any other spelling is listed as downstream.
        let (up, down): (Vec<&Toxic>, Vec<&Toxic>) =
            proxy.toxics.iter().partition(|t| t.stream == "upstream");
        toxic_section(&mut out, "Upstream", &up, style);
        out.push('\n');
        toxic_section(&mut out, "Downstream", &down, style);
    }
    style.hint(&mut out, &format!("add a toxic with `{prog} toxic add`"));
    out
}

fn toxic_section(out: &mut String, title: &str, toxics: &[&Toxic], style: Style) {
    out.push_str(&format!("{GREEN}{title} toxics:\n{NONE}"));
    if toxics.is_empty() {
        out.push_str(&format!(
            "{RED}Proxy has no {title} toxics enabled.\n{NONE}"
        ));
        return;
    }
    for toxic in toxics {
        toxic_row(out, toxic, style);
    }
}

fn toxic_row(out: &mut String, toxic: &Toxic, style: Style) {
    if style.tty {
        out.push_str(&format!("{BLUE}{}:{NONE}\t", toxic.name));
    } else {
        out.push_str(&toxic.name);
        out.push('\t');
    }
    out.push_str(&format!(
        "type={}\tstream={}\ttoxicity={:.2}\tattributes=[",
        toxic.kind.type_name(),
        toxic.stream,
        toxic.toxicity
    ));
    let mut attributes: Vec<(&str, Value)> = toxic
        .kind
        .attributes()
        .map(|(attr, value)| (attr.name, attr_value(value)))
        .collect();
    attributes.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in attributes {
        out.push('\t');
        out.push_str(key);
        out.push('=');
        out.push_str(&go_value(&value));
    }
    out.push_str("\t]");
    // toxi's own: only on scheduled toxics.
    if let Some(schedule) = &toxic.schedule {
        out.push_str(&format!(
            "\tschedule=[\tstart_after={}ms",
            schedule.start_after
        ));
        if let Some(d) = schedule.duration {
            out.push_str(&format!("\tduration={d}ms"));
        }
        if let Some(e) = schedule.every {
            out.push_str(&format!("\tevery={e}ms"));
        }
        let active = schedule.active;
        out.push_str(&format!("\t]\tactive={active}"));
    }
    // toxi's own: an HTTP toxic's match, only when it has one.
    if let Some(m) = &toxic.matcher {
        out.push_str("\tmatch=[");
        if let Some(method) = &m.method {
            out.push_str(&format!("\tmethod={method}"));
        }
        if let Some(path) = &m.path {
            out.push_str(&format!("\tpath={path}"));
        }
        for (name, value) in &m.headers {
            out.push_str(&format!("\theader.{name}={value}"));
        }
        out.push_str("\t]");
    }
    out.push('\n');
}

/// `Proxy <name> is now enabled|disabled`, green or red on a terminal.
pub fn toggled(name: &str, enabled: bool, style: Style) -> String {
    let c = style.enabled_color(enabled);
    let none = style.color(NONE);
    format!(
        "Proxy {c}{name}{none} is now {c}{}{none}\n",
        enabled_text(enabled)
    )
}

/// A JSON value as Go's `%v` prints the value `encoding/json` decodes it to: numbers are
/// float64 (`1e+06`), objects are `map[k:v ...]` with sorted keys, arrays `[a b]`.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_float(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_value(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// A float64 as Go's `%v` prints it: the shortest digits that read back the same, in
/// exponent form when the exponent is below -4 or at least 6 (`1e+06`, `1.5e-05`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.234567e6".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    } else if exp < 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.push_str(&"0".repeat(int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// An attribute as the JSON value a Go client decodes it to.
fn attr_value(value: &AttrValue) -> Value {
    match value {
        AttrValue::Int(n) => Value::from(*n),
        AttrValue::Float(f) => Value::from(*f),
        AttrValue::Str(s) => Value::from(s.as_str()),
        AttrValue::Map(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect(),
    }
}

/// A toxic for `-o json`: `name`, `type`, `stream`, `toxicity`, `attributes`.
fn toxic_value(toxic: &Toxic) -> Value {
    let attributes: Map<String, Value> = toxic
        .kind
        .attributes()
        .map(|(attr, value)| (attr.name.to_string(), attr_value(value)))
        .collect();
    let mut value = json!({
        "name": toxic.name,
        "type": toxic.kind.type_name(),
        "stream": toxic.stream,
        // Through its shortest text, so 0.1 stays 0.1 rather than 0.10000000149011612.
        "toxicity": toxic.toxicity.to_string().parse::<f64>().unwrap_or(1.0),
        "attributes": attributes,
    });
    // toxi's own fields, only where set.
    if let Some(fields) = value.as_object_mut() {
        if let Some(clients) = &toxic.clients {
            fields.insert("clients".into(), json!(clients.entries()));
        }
        if let Some(m) = &toxic.matcher {
            let mut matcher = Map::new();
            if let Some(method) = &m.method {
                matcher.insert("method".into(), method.as_str().into());
            }
            if let Some(path) = &m.path {
                matcher.insert("path".into(), path.as_str().into());
            }
            if !m.headers.is_empty() {
                matcher.insert("headers".into(), json!(m.headers));
            }
            fields.insert("match".into(), Value::Object(matcher));
        }
        if let Some(s) = &toxic.schedule {
            let mut schedule = Map::new();
            schedule.insert("start_after".into(), s.start_after.into());
            if let Some(d) = s.duration {
                schedule.insert("duration".into(), d.into());
            }
            if let Some(e) = s.every {
                schedule.insert("every".into(), e.into());
            }
            fields.insert("schedule".into(), Value::Object(schedule));
            fields.insert("active".into(), s.active.into());
        }
    }
    value
}

/// A proxy for `-o json`: `name`, `listen`, `upstream`, `enabled`, `toxics`.
fn proxy_value(proxy: &Proxy) -> Value {
    let mut fields = Map::new();
    fields.insert("name".into(), proxy.name.as_str().into());
    fields.insert("listen".into(), proxy.listen.as_str().into());
    fields.insert("upstream".into(), proxy.upstream.as_str().into());
    fields.insert("enabled".into(), proxy.enabled.into());
    // toxi's own: only a proxy that is not plain TCP says so.
    if !proxy.protocol.is_tcp() {
        fields.insert("protocol".into(), proxy.protocol.as_str().into());
    }
    let toxics: Vec<Value> = proxy.toxics.iter().map(toxic_value).collect();
    fields.insert("toxics".into(), toxics.into());
    Value::Object(fields)
}

/// `-o json` of `list`: an array of proxies sorted by name.
pub fn list_json(proxies: &BTreeMap<String, Proxy>) -> String {
    let list: Vec<Value> = proxies.values().map(proxy_value).collect();
    let mut s = serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".to_string());
    s.push('\n');
    s
}

/// `-o json` of `inspect`: the proxy object with its toxics.
pub fn inspect_json(proxy: &Proxy) -> String {
    let mut s =
        serde_json::to_string_pretty(&proxy_value(proxy)).unwrap_or_else(|_| "{}".to_string());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(json: &str) -> Proxy {
        toxi::model::json::decode_proxy_response(json.as_bytes(), toxi::toxics::def).unwrap()
    }

    const TTY: Style = Style { tty: true };
    const PIPE: Style = Style { tty: false };

    #[test]
    fn go_float_matches_go_percent_v() {
        let cases = [
            (0.0, "0"),
            (1000.0, "1000"),
            (0.5, "0.5"),
            (250.0, "250"),
            (100000.0, "100000"),
            (999999.0, "999999"),
            (1000000.0, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (123456789.0, "1.23456789e+08"),
            (9.223372036854776e18, "9.223372036854776e+18"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-5.0, "-5"),
            (-1e6, "-1e+06"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (12.5, "12.5"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float(f), want, "{f}");
        }
    }

    #[test]
    fn go_value_of_non_numbers() {
        let v: Value = serde_json::from_str(r#"{"b":[1,"x",true],"a":null}"#).unwrap();
        assert_eq!(go_value(&v), "map[a:<nil> b:[1 x true]]");
    }

    #[test]
    fn list_rows_for_scripts() {
        let mut map = BTreeMap::new();
        map.insert(
            "echo".to_string(),
            proxy(r#"{"name":"echo","listen":"127.0.0.1:26501","upstream":"127.0.0.1:26500","enabled":true,"toxics":[{"name":"a","type":"noop","stream":"upstream","toxicity":1,"attributes":{}},{"name":"b","type":"noop","stream":"downstream","toxicity":1,"attributes":{}}]}"#),
        );
        map.insert(
            "n1".to_string(),
            proxy(r#"{"name":"n1","listen":"127.0.0.1:26400","upstream":"localhost:1","enabled":false,"toxics":[]}"#),
        );
        assert_eq!(
            list(&map, PIPE, "toxiproxy-cli"),
            "echo\t127.0.0.1:26501\t127.0.0.1:26500\tenabled\t2\nn1\t127.0.0.1:26400\tlocalhost:1\tdisabled\t0\n"
        );
        assert_eq!(list(&BTreeMap::new(), PIPE, "x"), "");
    }

    #[test]
    fn list_table_on_a_terminal() {
        let mut map = BTreeMap::new();
        map.insert(
            "a_very_long_proxy_name_x".to_string(),
            proxy(r#"{"name":"a_very_long_proxy_name_x","listen":"127.0.0.1:26602","upstream":"127.0.0.1:26500","enabled":true,"toxics":[]}"#),
        );
        map.insert(
            "off".to_string(),
            proxy(r#"{"name":"off","listen":"127.0.0.1:26603","upstream":"localhost:1","enabled":false,"toxics":[]}"#),
        );
        let want = "\x1b[32mName\t\t\t\x1b[34mListen\t\t\x1b[33mUpstream\t\t\x1b[35mEnabled\t\t\x1b[31mToxics\n\x1b[0m\x1b[0m======================================================================================\n\x1b[32ma_very_long_proxy_name_x\x1b[0m\t\x1b[34m127.0.0.1:26602\x1b[0m\t\x1b[33m127.0.0.1:26500\x1b[0m\t\t\x1b[35menabled\x1b[0m\t\t\x1b[31mNone\x1b[0m\n\x1b[31moff\x1b[0m\t\t\t\x1b[34m127.0.0.1:26603\x1b[0m\t\x1b[33mlocalhost:1\x1b[0m\t\t\x1b[35mdisabled\x1b[0m\t\x1b[31mNone\x1b[0m\n\n\x1b[0mHint: inspect toxics with `toxiproxy-cli inspect <proxyName>`\n";
        assert_eq!(list(&map, TTY, "toxiproxy-cli"), want);
        let empty = "\x1b[32mName\t\t\t\x1b[34mListen\t\t\x1b[33mUpstream\t\t\x1b[35mEnabled\t\t\x1b[31mToxics\n\x1b[0m\x1b[0m======================================================================================\n\x1b[31mno proxies\n\x1b[0m\n\x1b[0mHint: create a proxy with `toxiproxy-cli create`\n";
        assert_eq!(list(&BTreeMap::new(), TTY, "toxiproxy-cli"), empty);
    }

    #[test]
    fn inspect_both_forms() {
        let p = proxy(
            r#"{"name":"echo","listen":"127.0.0.1:26501","upstream":"127.0.0.1:26500","enabled":true,"Logger":{},"toxics":[
            {"attributes":{"bytes":1000000},"name":"limit_data_upstream","type":"limit_data","stream":"upstream","toxicity":0.25},
            {"attributes":{"latency":1000,"jitter":5},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}]}"#,
        );
        assert_eq!(
            inspect(&p, PIPE, "x"),
            "limit_data_upstream\ttype=limit_data\tstream=upstream\ttoxicity=0.25\tattributes=[\tbytes=1e+06\t]\nlatency_downstream\ttype=latency\tstream=downstream\ttoxicity=1.00\tattributes=[\tjitter=5\tlatency=1000\t]\n"
        );
        let want = "\x1b[35mName: \x1b[0mecho\t\x1b[34mListen: \x1b[0m127.0.0.1:26501\t\x1b[33mUpstream: \x1b[0m127.0.0.1:26500\n\x1b[0m======================================================================\n\x1b[32mUpstream toxics:\n\x1b[0m\x1b[34mlimit_data_upstream:\x1b[0m\ttype=limit_data\tstream=upstream\ttoxicity=0.25\tattributes=[\tbytes=1e+06\t]\n\n\x1b[32mDownstream toxics:\n\x1b[0m\x1b[34mlatency_downstream:\x1b[0m\ttype=latency\tstream=downstream\ttoxicity=1.00\tattributes=[\tjitter=5\tlatency=1000\t]\n\n\x1b[0mHint: add a toxic with `toxiproxy-cli toxic add`\n";
        assert_eq!(inspect(&p, TTY, "toxiproxy-cli"), want);
        let off = proxy(
            r#"{"name":"off","listen":"127.0.0.1:26603","upstream":"localhost:1","enabled":false,"toxics":[]}"#,
        );
        assert_eq!(inspect(&off, PIPE, "x"), "");
        assert_eq!(
            inspect(&off, TTY, "toxiproxy-cli"),
            "\x1b[35mName: \x1b[0moff\t\x1b[34mListen: \x1b[0m127.0.0.1:26603\t\x1b[33mUpstream: \x1b[0mlocalhost:1\n\x1b[0m======================================================================\n\x1b[31mProxy has no toxics enabled.\n\x1b[0m\n\x1b[0mHint: add a toxic with `toxiproxy-cli toxic add`\n"
        );
    }

    #[test]
    fn inspect_shows_protocol_and_match_only_when_set() {
        let p = proxy(
            r#"{"name":"web","listen":"127.0.0.1:1","upstream":"u:2","enabled":true,"protocol":"http","toxics":[
            {"attributes":{"status":503,"body":"","headers":{}},"name":"a","type":"http_abort","stream":"downstream","toxicity":0.3,"match":{"method":"POST","path":"/api/*","headers":{"x-test":"1"}}},
            {"attributes":{"count":1,"status":500},"name":"f","type":"http_fail_first","stream":"downstream","toxicity":1}]}"#,
        );
        assert_eq!(
            inspect(&p, PIPE, "x"),
            "a\ttype=http_abort\tstream=downstream\ttoxicity=0.30\tattributes=[\tbody=\theaders=map[]\tstatus=503\t]\tmatch=[\tmethod=POST\tpath=/api/*\theader.x-test=1\t]\nf\ttype=http_fail_first\tstream=downstream\ttoxicity=1.00\tattributes=[\tcount=1\tstatus=500\t]\n"
        );
        assert!(inspect(&p, TTY, "x").starts_with(
            "\x1b[35mName: \x1b[0mweb\t\x1b[34mListen: \x1b[0m127.0.0.1:1\t\x1b[33mUpstream: \x1b[0mu:2\t\x1b[32mProtocol: \x1b[0mhttp\n"
        ));
        let json = inspect_json(&p);
        assert!(json.contains("\"protocol\": \"http\""), "{json}");
        assert!(json.contains("\"path\": \"/api/*\""), "{json}");
        let tcp = proxy(
            r#"{"name":"t","listen":"l","upstream":"u","enabled":true,"protocol":"tcp","toxics":[]}"#,
        );
        assert!(!inspect(&tcp, TTY, "x").contains("Protocol"));
    }

    #[test]
    fn toggle_message() {
        assert_eq!(toggled("off", true, PIPE), "Proxy off is now enabled\n");
        assert_eq!(
            toggled("off", true, TTY),
            "Proxy \x1b[32moff\x1b[0m is now \x1b[32menabled\x1b[0m\n"
        );
        assert_eq!(
            toggled("p", false, TTY),
            "Proxy \x1b[31mp\x1b[0m is now \x1b[31mdisabled\x1b[0m\n"
        );
    }

    #[test]
    fn toxicity_is_rounded_like_go() {
        let t = toxi::model::json::decode_toxic_response(
            br#"{"name":"t","type":"noop","stream":"downstream","toxicity":0.125,"attributes":{}}"#,
            toxi::toxics::def,
        )
        .unwrap();
        let mut out = String::new();
        toxic_row(&mut out, &t, PIPE);
        assert_eq!(
            out,
            "t\ttype=noop\tstream=downstream\ttoxicity=0.12\tattributes=[\t]\n"
        );
    }
}
