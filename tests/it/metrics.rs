//! Prometheus `/metrics`: live byte counters with the reference's labels, the active
//! connections gauge, toxic activations, and the runtime families.

use std::collections::BTreeMap;

use tokio::io::AsyncWriteExt;
use toxi::model::Direction;
use toxi::registry::{ProxyPatch, ToxicSnapshot};
use toxi::server::{Config, Server};

use crate::support::*;

async fn metrics_server() -> Server {
    server_with(Config {
        proxy_metrics: true,
        runtime_metrics: true,
        ..Config::for_tests()
    })
    .await
}

/// The `/metrics` text of `server`, over HTTP.
async fn scrape(server: &Server) -> String {
    let (status, head, body) = http_raw(server.api_addr(), "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    String::from_utf8(body).expect("UTF-8 exposition")
}

/// Sample lines as `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            (series.to_string(), value.parse().expect("numeric value"))
        })
        .collect()
}

fn bytes_series(name: &str, dir: &str, listener: &str, proxy: &str, upstream: &str) -> String {
    format!(
        "toxiproxy_proxy_{name}_bytes_total{{direction=\"{dir}\",listener=\"{listener}\",\
         proxy=\"{proxy}\",upstream=\"{upstream}\"}}"
    )
}

fn active_series(listener: &str, proxy: &str, upstream: &str) -> String {
    format!(
        "toxi_proxy_active_connections{{listener=\"{listener}\",proxy=\"{proxy}\",\
         upstream=\"{upstream}\"}}"
    )
}

fn activations_series(dir: &str, proxy: &str, toxic: &str, kind: &str) -> String {
    format!(
        "toxi_toxic_activations_total{{direction=\"{dir}\",proxy=\"{proxy}\",toxic=\"{toxic}\",\
         type=\"{kind}\"}}"
    )
}

/// Scrapes until `series` has `want`, failing after [`patience`].
async fn wait_for(server: &Server, series: &str, want: f64) {
    eventually(&format!("{series} = {want}"), || async {
        let text = scrape(server).await;
        match samples(&text).get(series).copied() {
            Some(got) if got == want => Ok(()),
            got => Err((got, text)),
        }
    })
    .await
}

fn toxic(name: &str, direction: Direction, toxicity: f32) -> ToxicSnapshot {
    ToxicSnapshot {
        matcher: None,
        name: name.into(),
        stream: direction.as_str().into(),
        direction,
        toxicity,
        kind: toxi::toxics::kind("noop"),
        schedule: None,
        clients: None,
    }
}

#[tokio::test]
async fn metrics_route_follows_the_flags() {
    let plain = server().await;
    let (status, body) = http(plain.api_addr(), "GET", "/metrics", "").await;
    assert_eq!((status, body.as_str()), (404, "404 page not found\n"));
    assert!(toxi::metrics::renderer(plain.registry().metrics().clone(), false, false).is_none());

    for (proxy_metrics, runtime_metrics) in [(true, false), (false, true)] {
        let server = server_with(Config {
            proxy_metrics,
            runtime_metrics,
            ..Config::for_tests()
        })
        .await;
        // Any method, as in the reference.
        let (status, body) = http(server.api_addr(), "POST", "/metrics", "").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("promhttp_metric_handler_errors_total{cause=\"encoding\"} 0\n"));
        assert_eq!(
            body.contains("process_open_fds "),
            runtime_metrics,
            "{body}"
        );
        let p = proxy(&server, "flagged", echo_upstream().await).await;
        let body = scrape(&server).await;
        assert_eq!(
            body.contains(&format!("listener=\"{}\"", p.listen)),
            proxy_metrics,
            "{body}"
        );
    }
}

/// DECISIONS §2.7: the byte counters move while the connection is still open, with the
/// reference's names and labels (listener is the bound address).
#[tokio::test]
async fn byte_counters_update_live_with_reference_labels() {
    let server = metrics_server().await;
    let upstream = echo_upstream().await.to_string();
    let p = proxy(&server, "echo", upstream.parse().unwrap()).await;
    let listener = p.listen.clone();
    assert!(listener.starts_with("127.0.0.1:") && !listener.ends_with(":0"));

    let mut c = connect(&p).await;
    c.write_all(&pattern(1000, 1)).await.unwrap();
    assert_eq!(read_n(&mut c, 1000).await, pattern(1000, 1));

    // The connection is still open: every counter already shows the 1000 bytes.
    for name in ["received", "sent"] {
        for dir in ["upstream", "downstream"] {
            wait_for(
                &server,
                &bytes_series(name, dir, &listener, "echo", &upstream),
                1000.0,
            )
            .await;
        }
    }
    wait_for(&server, &active_series(&listener, "echo", &upstream), 1.0).await;

    let text = scrape(&server).await;
    assert!(text.contains("# HELP toxiproxy_proxy_received_bytes_total \n"));
    assert!(text.contains("# TYPE toxiproxy_proxy_received_bytes_total counter\n"));
    assert!(text.contains("# HELP toxiproxy_proxy_sent_bytes_total \n"));
    assert!(text.contains("# TYPE toxiproxy_proxy_sent_bytes_total counter\n"));
    assert!(text.contains("promhttp_metric_handler_errors_total{cause=\"encoding\"} 0\n"));
    assert!(text.contains("promhttp_metric_handler_errors_total{cause=\"gathering\"} 0\n"));

    // A second connection counts too, and the gauge follows the open connections.
    let mut c2 = connect(&p).await;
    c2.write_all(b"hello").await.unwrap();
    assert_eq!(read_n(&mut c2, 5).await, b"hello");
    wait_for(&server, &active_series(&listener, "echo", &upstream), 2.0).await;
    wait_for(
        &server,
        &bytes_series("sent", "downstream", &listener, "echo", &upstream),
        1005.0,
    )
    .await;
    drop(c);
    wait_for(&server, &active_series(&listener, "echo", &upstream), 1.0).await;
    drop(c2);
    wait_for(&server, &active_series(&listener, "echo", &upstream), 0.0).await;
    // Closing changes no byte count.
    wait_for(
        &server,
        &bytes_series("received", "upstream", &listener, "echo", &upstream),
        1005.0,
    )
    .await;
}

/// Counters are monotonic: disabling, re-enabling on the same address and even deleting
/// the proxy keep the series, and a restart with the same labels continues it.
#[tokio::test]
async fn counters_survive_restarts_and_deletion() {
    let server = metrics_server().await;
    let upstream = echo_upstream().await.to_string();
    let p = proxy(&server, "mono", upstream.parse().unwrap()).await;
    let listener = p.listen.clone();
    let received = bytes_series("received", "upstream", &listener, "mono", &upstream);

    let mut c = connect(&p).await;
    c.write_all(b"0123456789").await.unwrap();
    read_n(&mut c, 10).await;
    wait_for(&server, &received, 10.0).await;

    let disable = ProxyPatch {
        enabled: Some(false),
        ..ProxyPatch::default()
    };
    server.registry().update("mono", disable).await.unwrap();
    expect_closed(&mut c).await;
    wait_for(&server, &received, 10.0).await;
    wait_for(&server, &active_series(&listener, "mono", &upstream), 0.0).await;

    let enable = ProxyPatch {
        enabled: Some(true),
        ..ProxyPatch::default()
    };
    let again = server.registry().update("mono", enable).await.unwrap();
    assert_eq!(again.listen, listener, "re-bound on the same address");
    let mut c = connect(&again).await;
    c.write_all(b"abcde").await.unwrap();
    read_n(&mut c, 5).await;
    wait_for(&server, &received, 15.0).await;

    server.registry().delete("mono").await.unwrap();
    expect_closed(&mut c).await;
    wait_for(&server, &received, 15.0).await;
    let text = scrape(&server).await;
    let series: Vec<_> = samples(&text)
        .into_keys()
        .filter(|k| k.starts_with("toxiproxy_proxy_received_bytes_total{"))
        .collect();
    assert_eq!(series.len(), 2, "one series per direction: {series:?}");
}

/// A toxic activation is counted when a toxic whose roll applies is attached to a link:
/// on connections opened after the toxic was added and on connections already open.
#[tokio::test]
async fn toxic_activations_count_attached_links() {
    let server = metrics_server().await;
    let upstream = echo_upstream().await;
    let p = proxy(&server, "tox", upstream).await;
    let always = activations_series("downstream", "tox", "always", "noop");
    let never = activations_series("upstream", "tox", "never", "noop");

    // One connection open before any toxic.
    let mut early = connect(&p).await;
    early.write_all(b"x").await.unwrap();
    read_n(&mut early, 1).await;

    let reg = server.registry();
    reg.add_toxic("tox", toxic("always", Direction::Downstream, 1.0))
        .unwrap();
    reg.add_toxic("tox", toxic("never", Direction::Upstream, 0.0))
        .unwrap();
    // The new series start at zero, then the live connection picks the toxic up.
    wait_for(&server, &always, 1.0).await;
    wait_for(&server, &never, 0.0).await;

    let mut late = Vec::new();
    for i in 0..3u8 {
        let mut c = connect(&p).await;
        c.write_all(&[i]).await.unwrap();
        assert_eq!(read_n(&mut c, 1).await, [i]);
        late.push(c);
    }
    wait_for(&server, &always, 4.0).await;
    wait_for(&server, &never, 0.0).await;

    // The series outlives the toxic.
    reg.remove_toxic("tox", "always").unwrap();
    early.write_all(b"y").await.unwrap();
    read_n(&mut early, 1).await;
    wait_for(&server, &always, 4.0).await;
    let text = scrape(&server).await;
    assert!(text.contains("# TYPE toxi_toxic_activations_total counter\n"));
}

/// `-runtime-metrics` gives the process family and the `go_*` stand-ins the reference's
/// end-to-end script greps for.
#[tokio::test]
async fn runtime_metrics_have_process_and_go_lines() {
    let server = metrics_server().await;
    let text = scrape(&server).await;
    for prefix in [
        "go_info{version=",
        "go_goroutines ",
        "go_threads ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_max_fds ",
        "process_resident_memory_bytes ",
        "process_virtual_memory_bytes ",
        "process_start_time_seconds ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(prefix)),
            "no line starts with {prefix:?}:\n{text}"
        );
    }
    let s = samples(&text);
    assert!(s["go_goroutines"] >= 1.0);
    assert!(s["process_open_fds"] >= 1.0);
    assert!(s["process_resident_memory_bytes"] > 0.0);
}

/// The reference's end-to-end metrics check (`scripts/test-e2e`): a proxy created over
/// the API with a `localhost` listen, traffic through it, then three greps on `/metrics`.
#[tokio::test]
async fn reference_e2e_metrics_greps() {
    let server = metrics_server().await;
    let upstream_port = echo_upstream().await.port();
    let body = format!(
        r#"{{"name":"shopify_http","listen":"localhost:0","upstream":"localhost:{upstream_port}"}}"#
    );
    let (status, reply) = http(server.api_addr(), "POST", "/proxies", &body).await;
    assert_eq!(status, 201, "{reply}");
    let created: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let listen = created["listen"].as_str().unwrap().to_string();
    assert!(listen.starts_with("127.0.0.1:"), "{listen}");

    let mut c = within("connect", tokio::net::TcpStream::connect(listen.as_str()))
        .await
        .unwrap();
    let request = b"GET /test2 HTTP/1.0\r\n\r\n";
    c.write_all(request).await.unwrap();
    read_n(&mut c, request.len()).await;

    let text = scrape(&server).await;
    let sent = format!(
        "toxiproxy_proxy_sent_bytes_total{{direction=\"downstream\",listener=\"{listen}\",\
         proxy=\"shopify_http\",upstream=\"localhost:{upstream_port}\"}} "
    );
    let line = text
        .lines()
        .find(|l| l.starts_with(&sent))
        .unwrap_or_else(|| panic!("no {sent}line:\n{text}"));
    let value = &line[sent.len()..];
    assert!(value.bytes().all(|b| b.is_ascii_digit()), "{line}");
    assert!(text.lines().any(|l| l.starts_with("go_info")));
    assert!(text.lines().any(|l| l.starts_with("go_goroutines")));
}
