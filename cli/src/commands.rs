//! The commands: argument checks, API calls and messages, in `toxiproxy-cli` 2.12's order
//! and wording.

use serde_json::{Map, Value};
use toxi::client::{Client, ClientError, NewProxy, NewToxic, Schedule, ToxicUpdate, TransportKind};

use crate::args::Parsed;
use crate::catalog::Action;
use crate::completions;
use crate::context::{Env, Host, HostSource, Outcome, VERSION};
use crate::output::{self, Style};

/// Everything a command needs.
struct Ctx<'a> {
    env: &'a Env,
    host: &'a Host,
    client: Client,
    style: Style,
    parsed: &'a Parsed,
    /// The command's help page in its error form, shown before argument errors.
    error_page: String,
}

/// Runs `action` with the parsed flags and arguments.
pub fn execute(
    env: &Env,
    host: &Host,
    action: Action,
    parsed: &Parsed,
    error_page: String,
) -> Outcome {
    if action == Action::Completions {
        return completions::run(&env.prog, parsed.first());
    }
    let client = Client::new(&host.url).with_user_agent(format!(
        "toxi/{VERSION} ({}/{})",
        std::env::consts::OS,
        std::env::consts::ARCH
    ));
    let ctx = Ctx {
        env,
        host,
        client,
        style: Style {
            tty: env.stdout_tty,
        },
        parsed,
        error_page,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Outcome::fail(format!("cannot start the I/O runtime: {e}")),
    };
    runtime.block_on(async {
        match action {
            Action::List => list(&ctx).await,
            Action::Inspect => inspect(&ctx).await,
            Action::Create => create(&ctx).await,
            Action::Toggle => toggle(&ctx).await,
            Action::Delete => delete(&ctx).await,
            Action::ToxicAdd => toxic_add(&ctx).await,
            Action::ToxicUpdate => toxic_update(&ctx).await,
            Action::ToxicRemove => toxic_remove(&ctx).await,
            Action::Connections => {
                crate::live::connections(&ctx.client, parsed, env.stdout_tty).await
            }
            Action::Kill => crate::live::kill(&ctx.client, parsed).await,
            Action::Events => crate::live::events(&ctx.client, parsed).await,
            // Handled above, before any runtime is needed.
            Action::Completions => Outcome::default(),
        }
    })
}

impl Ctx<'_> {
    fn missing(&self, message: &str) -> Outcome {
        Outcome::fail_with_help(self.error_page.clone(), message)
    }

    /// A failed API call: the message, plus (when stderr is a terminal and the server could
    /// not be reached) a hint naming the address tried and how to change it.
    fn api_failure(&self, message: String, error: &ClientError) -> Outcome {
        let mut outcome = Outcome::fail(message);
        if self.env.stderr_tty {
            if let Some(hint) = self.unreachable_hint(error) {
                if !outcome.stderr.ends_with("\n\n") {
                    outcome.stderr.push('\n');
                }
                outcome.stderr.push_str(&hint);
            }
        }
        outcome
    }

    fn unreachable_hint(&self, error: &ClientError) -> Option<String> {
        let endpoint = self.client.endpoint();
        let source = match self.host.source {
            HostSource::Flag => "set with -h/--host",
            HostSource::Environment => "from TOXIPROXY_URL",
            HostSource::Default => "the default address",
        };
        let how = "Point to the API with -h <url> (before the command) or the TOXIPROXY_URL environment variable.";
        if error.is_status(401) {
            return Some(format!(
                "Hint: {endpoint} wants an API token: set the TOXI_API_TOKEN environment variable.\n"
            ));
        }
        let text = match error.transport_kind()? {
            TransportKind::Connect | TransportKind::Resolve => format!(
                "Hint: nothing answered at {endpoint} ({source}). Is the server running there?\n      {how}\n"
            ),
            TransportKind::Timeout => format!(
                "Hint: {endpoint} ({source}) did not answer in time.\n      {how}\n"
            ),
            TransportKind::UnsupportedScheme => format!(
                "Hint: {endpoint} ({source}) uses https; the API speaks plain http. Use an http:// address.\n"
            ),
            TransportKind::InvalidUrl => format!(
                "Hint: {endpoint:?} ({source}) is not a usable API address. Use host:port or http://host:port.\n"
            ),
            _ => return None,
        };
        Some(text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

fn output_format(parsed: &Parsed) -> Result<Format, Outcome> {
    match parsed.string("output") {
        "" | "text" | "table" => Ok(Format::Text),
        "json" => Ok(Format::Json),
        other => Err(Outcome::fail(format!(
            "Unknown output format '{other}': use text or json.\n"
        ))),
    }
}

async fn list(ctx: &Ctx<'_>) -> Outcome {
    let format = match output_format(ctx.parsed) {
        Ok(f) => f,
        Err(o) => return o,
    };
    match ctx.client.proxies().await {
        Err(e) => ctx.api_failure(format!("Failed to retrieve proxies: {e}"), &e),
        Ok(proxies) => Outcome::print(match format {
            Format::Json => output::list_json(&proxies),
            Format::Text => output::list(&proxies, ctx.style, &ctx.env.prog),
        }),
    }
}

async fn inspect(ctx: &Ctx<'_>) -> Outcome {
    let name = ctx.parsed.first();
    if name.is_empty() {
        return ctx.missing("Proxy name is required as the first argument.\n");
    }
    let format = match output_format(ctx.parsed) {
        Ok(f) => f,
        Err(o) => return o,
    };
    match ctx.client.proxy(name).await {
        Err(e) => ctx.api_failure(format!("Failed to retrieve proxy {name}: {e}\n"), &e),
        Ok(proxy) => Outcome::print(match format {
            Format::Json => output::inspect_json(&proxy),
            Format::Text => output::inspect(&proxy, ctx.style, &ctx.env.prog),
        }),
    }
}

async fn create(ctx: &Ctx<'_>) -> Outcome {
    let name = ctx.parsed.first();
    if name.is_empty() {
        return ctx.missing("Proxy name is required as the first argument.\n");
    }
    let listen = ctx.parsed.string("listen");
    if listen.is_empty() {
        return ctx.missing("Required argument 'listen' was empty.\n");
    }
    let upstream = ctx.parsed.string("upstream");
    if upstream.is_empty() {
        return ctx.missing("Required argument 'upstream' was empty.\n");
    }
    let mut proxy = NewProxy::new(name, listen, upstream);
    // toxi's own `--protocol`: sent only when given, so a Toxiproxy server sees the
    // reference's body; the server checks the value.
    let protocol = ctx.parsed.string("protocol");
    if !protocol.is_empty() {
        proxy = proxy.protocol(protocol);
    }
    match ctx.client.create_proxy(&proxy).await {
        Err(e) => ctx.api_failure(format!("Failed to create proxy: Create: {e}\n"), &e),
        Ok(_) => Outcome::print(format!("Created new proxy {name}\n")),
    }
}

async fn toggle(ctx: &Ctx<'_>) -> Outcome {
    let name = ctx.parsed.first();
    if name.is_empty() {
        return ctx.missing("Proxy name is required as the first argument.\n");
    }
    let mut proxy = match ctx.client.proxy(name).await {
        Ok(p) => p,
        Err(e) => return ctx.api_failure(format!("Failed to retrieve proxy {name}: {e}\n"), &e),
    };
    proxy.enabled = !proxy.enabled;
    match ctx.client.save_proxy(&proxy).await {
        Err(e) => ctx.api_failure(format!("Failed to toggle proxy {name}: {e}\n"), &e),
        // The state printed is the one the server answered with.
        Ok(saved) => Outcome::print(output::toggled(name, saved.enabled, ctx.style)),
    }
}

async fn delete(ctx: &Ctx<'_>) -> Outcome {
    let name = ctx.parsed.first();
    if name.is_empty() {
        return ctx.missing("Proxy name is required as the first argument.\n");
    }
    let proxy = match ctx.client.proxy(name).await {
        Ok(p) => p,
        Err(e) => return ctx.api_failure(format!("Failed to retrieve proxy {name}: {e}\n"), &e),
    };
    match ctx.client.delete_proxy(&proxy.name).await {
        Err(e) => ctx.api_failure(format!("Failed to delete proxy: Delete: {e}\n"), &e),
        Ok(()) => Outcome::print(format!("Deleted proxy {name}\n")),
    }
}

/// `--toxicity`: empty means the default; otherwise a float in [0, 1].
fn toxicity(parsed: &Parsed) -> Result<f32, Outcome> {
    let raw = parsed.string("toxicity");
    if raw.is_empty() {
        return Ok(1.0);
    }
    match raw.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v as f32),
        _ => Err(Outcome::fail(
            "toxicity should be a float between 0 and 1.\n",
        )),
    }
}

/// `-a key=value` pairs: split at the first `=` (entries without one are dropped, as in the
/// reference); values that read as numbers are sent as JSON numbers, others as strings.
fn attributes(parsed: &Parsed) -> Map<String, Value> {
    let mut map = Map::new();
    for raw in parsed.slice("attribute") {
        if let Some((key, value)) = raw.split_once('=') {
            map.insert(key.to_string(), attribute_value(value));
        }
    }
    map
}

fn attribute_value(raw: &str) -> Value {
    match raw.parse::<f64>() {
        // Rust prints integral floats without a fraction ("250"), as Go's encoder does, so
        // integer attributes stay integers on the wire.
        Ok(f) if f.is_finite() => {
            serde_json::from_str(&f.to_string()).unwrap_or_else(|_| Value::String(raw.to_string()))
        }
        _ => Value::String(raw.to_string()),
    }
}

/// `--after D --for D --every D` (Go durations such as `5s`, or milliseconds): the schedule,
/// or `None` when none of them is given.
fn schedule(parsed: &Parsed) -> Result<Option<Schedule>, Outcome> {
    let mut any = false;
    let mut field = |flag: &str| -> Result<Option<u64>, Outcome> {
        let raw = parsed.string(flag);
        if raw.is_empty() {
            return Ok(None);
        }
        any = true;
        let ms = match raw.parse::<u64>() {
            Ok(ms) => Ok(ms),
            Err(_) => match toxi::model::schedule::parse_go_duration(raw) {
                Ok(ns) if ns >= 0 => Ok(ns as u64 / 1_000_000),
                _ => Err(()),
            },
        };
        ms.map(Some).map_err(|()| {
            Outcome::fail(format!(
                "--{flag} should be a duration such as 30s, 1m30s or 250ms (got {raw:?}).\n"
            ))
        })
    };
    let start_after = field("after")?;
    let duration = field("for")?;
    let every = field("every")?;
    Ok(any.then(|| Schedule {
        start_after: start_after.unwrap_or(0),
        duration,
        every,
    }))
}

async fn toxic_add(ctx: &Ctx<'_>) -> Outcome {
    let proxy_name = ctx.parsed.first();
    if proxy_name.is_empty() {
        return ctx.missing("Proxy name is missing.\n");
    }
    let toxic_type = ctx.parsed.string("type");
    if toxic_type.is_empty() {
        return ctx.missing("Required argument 'type' was empty.\n");
    }
    let upstream = ctx.parsed.bool("upstream");
    if upstream && ctx.parsed.bool("downstream") {
        return Outcome::fail("Only one should be specified: upstream or downstream.\n");
    }
    let toxicity = match toxicity(ctx.parsed) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let toxic = NewToxic {
        name: ctx.parsed.string("toxicName").to_string(),
        r#type: toxic_type.to_string(),
        stream: Some(if upstream { "upstream" } else { "downstream" }.to_string()),
        toxicity,
        attributes: attributes(ctx.parsed),
        schedule: match schedule(ctx.parsed) {
            Ok(s) => s,
            Err(o) => return o,
        },
        r#match: None,
    };
    let proxy = match ctx.client.proxy(proxy_name).await {
        Ok(p) => p,
        Err(e) => {
            return ctx.api_failure(
                format!(
                    "Failed to add toxic: failed to retrieve proxy with name `{proxy_name}`: {e}\n"
                ),
                &e,
            )
        }
    };
    match ctx.client.add_toxic(&proxy.name, &toxic).await {
        Err(e) => {
            let prefix = if matches!(e, ClientError::Decode { .. }) {
                ""
            } else {
                "AddToxic: "
            };
            ctx.api_failure(
                format!(
                    "Failed to add toxic: failed to add toxic to proxy {proxy_name}: {prefix}{e}\n"
                ),
                &e,
            )
        }
        Ok(added) => Outcome::print(format!(
            "Added {} {} toxic '{}' on proxy '{proxy_name}'\n",
            added.stream,
            added.kind.type_name(),
            added.name
        )),
    }
}

async fn toxic_update(ctx: &Ctx<'_>) -> Outcome {
    let proxy_name = ctx.parsed.first();
    if proxy_name.is_empty() {
        return ctx.missing("Proxy name is missing.\n");
    }
    let toxic_name = ctx.parsed.string("toxicName");
    // As in the reference, the toxicity is always sent: 1.0 unless --toxicity is given.
    let toxicity = match toxicity(ctx.parsed) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let update = ToxicUpdate {
        attributes: attributes(ctx.parsed),
        toxicity: Some(toxicity),
        schedule: match schedule(ctx.parsed) {
            Ok(s) => s.map(Some),
            Err(o) => return o,
        },
        r#match: None,
    };
    let proxy = match ctx.client.proxy(proxy_name).await {
        Ok(p) => p,
        Err(e) => {
            return ctx.api_failure(
                format!(
                "Failed to update toxic: failed to retrieve proxy with name `{proxy_name}`: {e}\n"
            ),
                &e,
            )
        }
    };
    match ctx.client.update_toxic(&proxy.name, toxic_name, &update).await {
        Err(e) => ctx.api_failure(
            format!("Failed to update toxic: failed to update toxic '{toxic_name}' of proxy '{proxy_name}': {e}\n"),
            &e,
        ),
        Ok(updated) => Outcome::print(format!(
            "Updated toxic '{}' on proxy '{proxy_name}'\n",
            updated.name
        )),
    }
}

async fn toxic_remove(ctx: &Ctx<'_>) -> Outcome {
    let proxy_name = ctx.parsed.first();
    if proxy_name.is_empty() {
        return ctx.missing("Proxy name is missing.\n");
    }
    let toxic_name = ctx.parsed.string("toxicName");
    let proxy = match ctx.client.proxy(proxy_name).await {
        Ok(p) => p,
        Err(e) => {
            return ctx.api_failure(
                format!(
                "Failed to remove toxic: failed to retrieve proxy with name `{proxy_name}`: {e}\n"
            ),
                &e,
            )
        }
    };
    match ctx.client.remove_toxic(&proxy.name, toxic_name).await {
        Err(e) => ctx.api_failure(
            format!("Failed to remove toxic: failed to remove toxic '{toxic_name}' from proxy '{proxy_name}': {e}\n"),
            &e,
        ),
        Ok(()) => Outcome::print(format!(
            "Removed toxic '{toxic_name}' on proxy '{proxy_name}'\n"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values() {
        assert_eq!(attribute_value("250").to_string(), "250");
        assert_eq!(attribute_value("1.5").to_string(), "1.5");
        assert_eq!(attribute_value("-3").to_string(), "-3");
        assert_eq!(attribute_value("1e6").to_string(), "1000000");
        assert_eq!(attribute_value("abc"), Value::String("abc".into()));
        assert_eq!(attribute_value("inf"), Value::String("inf".into()));
        assert_eq!(attribute_value(""), Value::String(String::new()));
    }
}
