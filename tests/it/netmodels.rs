//! Network models through a real proxy: latency distributions, packet loss, shared
//! bandwidth and client targeting. The statistics are pinned precisely by the samplers' unit
//! tests; these check the same behaviour end to end with tolerances a loaded 2-core machine
//! keeps.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use toxi::model::{Clients, Direction, ToxicKind};
use toxi::registry::{ProxySnapshot, ToxicSnapshot};
use toxi::server::Server;

use crate::support::*;

fn add_to(
    server: &Server,
    p: &ProxySnapshot,
    name: &str,
    kind: ToxicKind,
    clients: Option<&[&str]>,
) {
    let toxic = ToxicSnapshot {
        name: name.into(),
        stream: "upstream".into(),
        direction: Direction::Upstream,
        toxicity: 1.0,
        kind,
        clients: clients.map(|c| Clients::parse(c).unwrap()),
    };
    server
        .registry()
        .add_toxic(&p.name, toxic)
        .expect("toxic added");
}

/// Connects to the proxy from the local address `from` (any 127.0.0.0/8 address works on
/// loopback).
async fn connect_from(p: &ProxySnapshot, from: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let addr: SocketAddr = p.listen.parse().unwrap();
    within("connect", sock.connect(addr))
        .await
        .expect("connects")
}

async fn round_trip(c: &mut TcpStream, msg: &[u8]) -> Duration {
    let start = Instant::now();
    c.write_all(msg).await.unwrap();
    assert_eq!(read_n(c, msg.len()).await, msg);
    start.elapsed()
}

#[tokio::test]
async fn clients_target_only_matching_addresses() {
    let server = server().await;
    let p = proxy(&server, "targeted", echo_upstream().await).await;
    let slow = toxi::toxics::kind("latency").with("latency", 400);
    add_to(
        &server,
        &p,
        "slow_one",
        slow,
        Some(&["127.0.0.2", "10.0.0.0/8"]),
    );

    let mut other = connect_from(&p, "127.0.0.1").await;
    let mut target = connect_from(&p, "127.0.0.2").await;
    let fast = round_trip(&mut other, b"ping").await;
    let slowed = round_trip(&mut target, b"ping").await;
    assert!(fast < Duration::from_millis(300), "127.0.0.1 took {fast:?}");
    assert!(
        slowed >= Duration::from_millis(395),
        "127.0.0.2 took {slowed:?}"
    );

    // Re-targeting applies to live connections.
    server
        .registry()
        .update_toxic(&p.name, "slow_one", |t| {
            t.clients = Some(Clients::parse(&["127.0.0.1/32"]).unwrap());
            Ok(())
        })
        .unwrap();
    let now_slow = round_trip(&mut other, b"again").await;
    let now_fast = round_trip(&mut target, b"again").await;
    assert!(now_slow >= Duration::from_millis(395), "{now_slow:?}");
    assert!(now_fast < Duration::from_millis(300), "{now_fast:?}");
}

#[tokio::test]
async fn clients_are_shown_only_when_set_and_malformed_entries_are_400s() {
    let server = server().await;
    let api = server.api_addr();
    create_proxy_http(api, "cl", echo_upstream().await).await;
    let (status, plain) = http(
        api,
        "POST",
        "/proxies/cl/toxics",
        r#"{"name":"a","type":"latency","attributes":{"latency":1}}"#,
    )
    .await;
    assert_eq!(status, 200, "{plain}");
    assert!(!plain.contains("clients"), "{plain}");

    let (status, set) = http(
        api,
        "POST",
        "/proxies/cl/toxics",
        r#"{"name":"b","type":"latency","clients":["10.1.0.0/16","::1"],"attributes":{"latency":1}}"#,
    )
    .await;
    assert_eq!(status, 200, "{set}");
    assert!(
        set.ends_with(r#","toxicity":1,"clients":["10.1.0.0/16","::1"]}"#),
        "{set}"
    );
    let (_, listed) = http(api, "GET", "/proxies/cl/toxics/b", "").await;
    assert_eq!(listed, set);

    // An update may change or clear the targeting.
    let (status, cleared) = http(api, "POST", "/proxies/cl/toxics/b", r#"{"clients":[]}"#).await;
    assert_eq!(status, 200, "{cleared}");
    assert!(!cleared.contains("clients"), "{cleared}");

    for (body, names) in [
        (
            r#"{"name":"c","type":"noop","clients":["10.1.0.0/33"]}"#,
            "10.1.0.0/33",
        ),
        (
            r#"{"name":"c","type":"noop","clients":["127.0.0.1","nope"]}"#,
            "nope",
        ),
        (
            r#"{"name":"c","type":"noop","clients":"127.0.0.1"}"#,
            "clients",
        ),
        (r#"{"name":"c","type":"noop","clients":[1]}"#, "clients"),
    ] {
        let (status, reply) = http(api, "POST", "/proxies/cl/toxics", body).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(
            reply.contains(names) && reply.contains(r#""status":400"#),
            "{reply}"
        );
    }
    let (status, reply) = http(
        api,
        "POST",
        "/proxies/cl/toxics/a",
        r#"{"clients":["1.2.3.4/99"]}"#,
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("1.2.3.4/99"), "{reply}");
    let (_, a) = http(api, "GET", "/proxies/cl/toxics/a", "").await;
    assert_eq!(a, plain, "a failed update changes nothing");
}
