//! `GET /events` (beyond.md §3.2): every change shows up, in order; a stalled reader
//! slows nothing and a slow one gets `lagged`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use toxi::client::{EventStream, NewProxy, NewToxic, ToxicUpdate};
use toxi::events::{Kind, Value};

use crate::support::*;

async fn next_kind(events: &mut EventStream) -> toxi::client::Event {
    within("an event", events.next())
        .await
        .unwrap()
        .expect("stream open")
}

#[tokio::test]
async fn every_action_in_order() {
    let server = server().await;
    let client = server.client();
    let mut events = client.events().await.unwrap();
    let upstream = echo_upstream().await;
    let p = client
        .create_proxy(&NewProxy::new("web", "127.0.0.1:0", upstream.to_string()))
        .await
        .unwrap();
    client
        .add_toxic(
            "web",
            &NewToxic::new("latency").name("lat").attribute("latency", 1),
        )
        .await
        .unwrap();
    client
        .update_toxic("web", "lat", &ToxicUpdate::new().attribute("latency", 2))
        .await
        .unwrap();
    client.remove_toxic("web", "lat").await.unwrap();
    let mut sock = TcpStream::connect(p.listen.as_str()).await.unwrap();
    sock.write_all(b"x").await.unwrap();
    read_n(&mut sock, 1).await;
    drop(sock);
    within("first connection closed", async {
        while !client.connections("web").await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let mut sock = TcpStream::connect(p.listen.as_str()).await.unwrap();
    sock.write_all(b"y").await.unwrap();
    read_n(&mut sock, 1).await;
    let id = client.connections("web").await.unwrap()[0].id;
    client.kill("web", id, false).await.unwrap();
    let mut p2 = p.clone();
    p2.enabled = false;
    client.save_proxy(&p2).await.unwrap();
    client.delete_proxy("web").await.unwrap();

    let want = [
        ("proxy.created", None),
        ("toxic.added", None),
        ("toxic.updated", None),
        ("toxic.removed", None),
        ("connection.opened", None),
        ("connection.closed", Some("client")),
        ("connection.opened", None),
        ("connection.closed", Some("api")),
        ("proxy.updated", None),
        ("proxy.deleted", None),
    ];
    for (kind, reason) in want {
        let ev = next_kind(&mut events).await;
        assert_eq!(ev.kind, kind, "{}", ev.json);
        assert_eq!(ev.proxy.as_deref(), Some("web"));
        assert!(ev.time.ends_with('Z') && ev.time.len() == 24, "{}", ev.time);
        if let Some(r) = reason {
            assert_eq!(ev.json["reason"], r, "{}", ev.json);
        }
        if kind.starts_with("toxic.") {
            assert_eq!(ev.json["toxic"], "lat");
        }
    }
}

#[tokio::test]
async fn events_need_the_token() {
    let server = server_with(toxi::server::Config {
        api_token: Some("s3cret".into()),
        ..toxi::server::Config::for_tests()
    })
    .await;
    let anon = server.client().with_token(None);
    assert_eq!(anon.events().await.err().unwrap().http_status(), Some(401));
    assert_eq!(
        anon.connections("x").await.unwrap_err().http_status(),
        Some(401)
    );
    let ok = server.client().with_token(Some("s3cret".into()));
    let mut events = ok.events().await.unwrap();
    ok.create_proxy(&NewProxy::new("a", "127.0.0.1:0", "127.0.0.1:1"))
        .await
        .unwrap();
    assert_eq!(next_kind(&mut events).await.kind, "proxy.created");
}

/// A reader that never reads: the API keeps answering quickly and a transfer runs at
/// full speed while tens of thousands of events are published; a reader that only
/// starts reading late is told how many it missed.
#[tokio::test]
async fn a_stalled_reader_slows_nothing() {
    let server = server().await;
    let api = server.api_addr();
    let mut stalled = TcpStream::connect(api).await.unwrap();
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stalled.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let mut late = server.client().events().await.unwrap();

    let bus = server.registry().events().clone();
    let big = "x".repeat(200);
    let publisher = std::thread::spawn(move || {
        for i in 0..60_000u64 {
            bus.publish(
                Kind::ToxicActivated,
                Some("load"),
                &[("n", Value::U64(i)), ("pad", Value::Str(&big))],
            );
        }
    });
    let p = proxy(&server, "web", echo_upstream().await).await;
    let client = server.client();
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        let t = Instant::now();
        client.proxies().await.unwrap();
        worst = worst.max(t.elapsed());
    }
    assert!(worst < Duration::from_secs(1), "API call took {worst:?}");
    let mut sock = connect(&p).await;
    let data = pattern(4 << 20, 1);
    let (mut r, mut w) = sock.split();
    let (_, (n, _)) = tokio::join!(
        async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        },
        sha256_to_eof(&mut r, PATIENCE)
    );
    assert_eq!(n, data.len());
    publisher.join().unwrap();

    let lagged = within("lagged", async {
        loop {
            let ev = late.next().await.unwrap().unwrap();
            if ev.kind == "lagged" {
                return ev;
            }
        }
    })
    .await;
    assert!(
        lagged.json["missed"].as_u64().unwrap() > 0,
        "{}",
        lagged.json
    );
    drop(stalled);
}

/// `connection.closed` says why: the upstream closing first, a toxic, a stopped proxy.
#[tokio::test]
async fn close_reasons() {
    let server = server().await;
    let client = server.client();
    // An upstream that closes at once after accepting.
    let closing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closing_addr = closing.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = closing.accept().await {
            drop(s);
        }
    });
    let a = proxy(&server, "a", closing_addr).await;
    let b = proxy(&server, "b", echo_upstream().await).await;
    client
        .add_toxic(
            "b",
            &NewToxic::new("reset_peer")
                .upstream()
                .attribute("timeout", 0),
        )
        .await
        .unwrap();
    let c = proxy(&server, "c", echo_upstream().await).await;
    let mut events = client.events().await.unwrap();

    let mut reasons = std::collections::BTreeMap::new();
    // Half-close: the client sees the upstream's FIN, and the connection ends when the
    // client closes too; the upstream went first.
    let mut sa = connect(&a).await;
    expect_closed(&mut sa).await;
    drop(sa);
    let mut sb = connect(&b).await;
    sb.write_all(b"x").await.unwrap();
    let mut sc = connect(&c).await;
    sc.write_all(b"y").await.unwrap();
    read_n(&mut sc, 1).await;
    let mut disabled = false;
    within("three close reasons", async {
        while reasons.len() < 3 {
            let ev = next_kind(&mut events).await;
            if ev.kind == "connection.opened" && ev.proxy.as_deref() == Some("c") && !disabled {
                disabled = true;
                let mut pc = client.proxy("c").await.unwrap();
                pc.enabled = false;
                client.save_proxy(&pc).await.unwrap();
            }
            if ev.kind == "connection.closed" {
                reasons.insert(
                    ev.proxy.clone().unwrap(),
                    ev.json["reason"].as_str().unwrap().to_owned(),
                );
            }
        }
    })
    .await;
    assert_eq!(reasons["a"], "upstream");
    assert_eq!(reasons["b"], "toxic");
    assert_eq!(reasons["c"], "proxy_stopped");
}

/// An open event stream ends at server shutdown instead of holding it up.
#[tokio::test]
async fn shutdown_ends_the_stream() {
    let server = server().await;
    let mut events = server.client().events().await.unwrap();
    let t0 = Instant::now();
    within("shutdown", server.shutdown()).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let end = within("end of stream", events.next()).await;
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}
