//! The data path without toxics: bytes, half-close, lifecycle closes, dial failures.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use toxi::registry::ProxyPatch;

use crate::support::*;

#[tokio::test]
async fn small_message_round_trip() {
    let server = server().await;
    let p = proxy(&server, "echo", echo_upstream().await).await;
    let mut c = connect(&p).await;
    c.write_all(b"hello toxi").await.unwrap();
    assert_eq!(read_n(&mut c, 10).await, b"hello toxi");
}

#[tokio::test]
async fn multi_mib_transfer_is_byte_exact() {
    use sha2::{Digest, Sha256};
    let server = server().await;
    let p = proxy(&server, "bulk", echo_upstream().await).await;
    let data = pattern(8 * 1024 * 1024 + 123, 7);
    let expected = Sha256::digest(&data);
    let c = connect(&p).await;
    let (mut r, mut w) = c.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    within("echo of 8 MiB", r.read_to_end(&mut got))
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!(got.len(), 8 * 1024 * 1024 + 123);
    assert_eq!(Sha256::digest(&got), expected);
}

/// DECISIONS §2.1: the client's FIN is propagated as a half-close, and a reply the
/// upstream sends afterwards still arrives.
#[tokio::test]
async fn half_close_keeps_the_reply_direction_open() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        sock.read_to_end(&mut request).await.unwrap(); // until the client's FIN
        tokio::time::sleep(Duration::from_millis(50)).await;
        sock.write_all(b"reply after FIN: ").await.unwrap();
        sock.write_all(&request).await.unwrap();
        sock.shutdown().await.unwrap();
    });
    let server = server().await;
    let p = proxy(&server, "half", upstream).await;
    let mut c = connect(&p).await;
    c.write_all(b"question").await.unwrap();
    c.shutdown().await.unwrap();
    let (reply, clean) = read_to_end(&mut c).await;
    assert!(clean);
    assert_eq!(reply, b"reply after FIN: question");
}

/// A reply that arrives together with its FIN (an upstream that answers and closes) leaves
/// toward the client together with it too, in one segment, as from the upstream itself:
/// the client's socket sees the handshake's SYN-ACK and one more segment, not a data
/// segment and then a bare FIN.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_reply_and_its_fin_leave_in_one_segment() {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        // Held back (`MSG_MORE`) until the shutdown, so both go in one segment.
        let sent = send_more(&sock, b"220 ready, bye\r\n");
        assert_eq!(sent, 16);
        sock.shutdown(std::net::Shutdown::Write).unwrap();
        let _ = std::io::Read::read(&mut &sock, &mut [0u8; 1]);
    });
    let server = server().await;
    let p = proxy(&server, "one-segment", upstream).await;
    let mut c = connect(&p).await;
    let (reply, clean) = read_to_end(&mut c).await;
    assert!(clean);
    assert_eq!(reply, b"220 ready, bye\r\n");
    // SAFETY: a plain `getsockopt` into a `tcp_info` of the size passed.
    #[allow(unsafe_code)]
    let segs_in = unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            c.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        assert_eq!(rc, 0);
        info.tcpi_segs_in
    };
    assert_eq!(segs_in, 2, "SYN-ACK, then the reply with the FIN");
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn send_more(sock: &std::net::TcpStream, data: &[u8]) -> isize {
    use std::os::fd::AsRawFd;
    // SAFETY: sends from a live slice of the length given.
    unsafe {
        libc::send(
            sock.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_MORE | libc::MSG_NOSIGNAL,
        )
    }
}

/// An upstream that speaks first (a greeting, as SMTP or MySQL servers send) reaches the
/// client before it has sent anything, and the exchange goes on from there.
#[tokio::test]
async fn an_upstream_that_speaks_first_is_heard() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        sock.write_all(b"220 ready\r\n").await.unwrap();
        let mut buf = [0u8; 6];
        sock.read_exact(&mut buf).await.unwrap();
        sock.write_all(&buf).await.unwrap();
    });
    let server = server().await;
    let p = proxy(&server, "greeter", upstream).await;
    let mut c = connect(&p).await;
    assert_eq!(read_n(&mut c, 11).await, b"220 ready\r\n");
    c.write_all(b"HELO x").await.unwrap();
    assert_eq!(read_n(&mut c, 6).await, b"HELO x");
}

/// Both ends close, in either order (as an HTTP exchange with `Connection: close` does):
/// each peer gets every byte and then a clean end of stream, never a reset.
#[tokio::test]
async fn both_ends_closing_end_cleanly_for_both_peers() {
    for upstream_first in [true, false] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let (got_tx, got_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 7];
            sock.read_exact(&mut request).await.unwrap();
            sock.write_all(b"response").await.unwrap();
            if upstream_first {
                sock.shutdown().await.unwrap();
            }
            let mut rest = Vec::new();
            let clean = sock.read_to_end(&mut rest).await.is_ok();
            let _ = got_tx.send((request, rest, clean));
        });
        let server = server().await;
        let p = proxy(&server, "closing", upstream).await;
        let mut c = connect(&p).await;
        c.write_all(b"request").await.unwrap();
        assert_eq!(read_n(&mut c, 8).await, b"response");
        if upstream_first {
            let (rest, clean) = read_to_end(&mut c).await;
            assert!(clean && rest.is_empty(), "client: {rest:?} clean={clean}");
            c.shutdown().await.unwrap();
        } else {
            c.shutdown().await.unwrap();
        }
        let (request, rest, clean) = within("upstream sees the end", got_rx).await.unwrap();
        assert_eq!(&request, b"request");
        assert!(clean && rest.is_empty(), "upstream: {rest:?} clean={clean}");
        if !upstream_first {
            // The upstream's socket closed after the client's FIN reached it.
            let (rest, clean) = read_to_end(&mut c).await;
            assert!(clean && rest.is_empty(), "client: {rest:?} clean={clean}");
        }
    }
}

#[tokio::test]
async fn disable_closes_live_connections_and_refuses_new_ones() {
    let server = server().await;
    let p = proxy(&server, "dis", echo_upstream().await).await;
    let mut c = connect(&p).await;
    c.write_all(b"x").await.unwrap();
    read_n(&mut c, 1).await;
    let patch = ProxyPatch {
        enabled: Some(false),
        ..Default::default()
    };
    let updated = server.registry().update("dis", patch).await.unwrap();
    assert!(!updated.enabled);
    expect_closed(&mut c).await;
    assert!(
        TcpStream::connect(p.listen.as_str()).await.is_err(),
        "listener closed"
    );
    // Re-enabling binds the same address again.
    let patch = ProxyPatch {
        enabled: Some(true),
        ..Default::default()
    };
    let again = server.registry().update("dis", patch).await.unwrap();
    assert_eq!(again.listen, p.listen);
    let mut c = connect(&again).await;
    c.write_all(b"y").await.unwrap();
    assert_eq!(read_n(&mut c, 1).await, b"y");
}

#[tokio::test]
async fn delete_closes_live_connections_and_frees_the_port() {
    let server = server().await;
    let p = proxy(&server, "del", echo_upstream().await).await;
    let mut c = connect(&p).await;
    c.write_all(b"x").await.unwrap();
    read_n(&mut c, 1).await;
    server.registry().delete("del").await.unwrap();
    expect_closed(&mut c).await;
    assert!(TcpStream::connect(p.listen.as_str()).await.is_err());
    // The port is free again at once.
    let again = server
        .registry()
        .create(toxi::registry::ProxyInput {
            protocol: Default::default(),
            name: "del".into(),
            listen: p.listen.clone(),
            upstream: p.upstream.clone(),
            enabled: true,
        })
        .await
        .unwrap();
    assert_eq!(again.listen, p.listen);
}

#[tokio::test]
async fn changing_upstream_closes_live_connections() {
    let server = server().await;
    let p = proxy(&server, "chg", echo_upstream().await).await;
    let mut c = connect(&p).await;
    c.write_all(b"x").await.unwrap();
    read_n(&mut c, 1).await;
    let other = echo_upstream().await;
    let patch = ProxyPatch {
        upstream: Some(other.to_string()),
        ..Default::default()
    };
    let updated = server.registry().update("chg", patch).await.unwrap();
    assert!(updated.enabled);
    assert_eq!(updated.listen, p.listen, "same address re-bound");
    expect_closed(&mut c).await;
    let mut c = connect(&updated).await;
    c.write_all(b"z").await.unwrap();
    assert_eq!(read_n(&mut c, 1).await, b"z");
}

#[tokio::test]
async fn failed_dial_closes_the_client() {
    let server = server().await;
    let p = proxy(&server, "dead", dead_port().await).await;
    let mut c = connect(&p).await;
    let (data, _) = read_to_end(&mut c).await;
    assert!(data.is_empty());
}

/// An upstream whose accept queue is full: further SYNs are dropped, so dials hang.
fn black_hole() -> (
    socket2::Socket,
    Vec<std::net::TcpStream>,
    std::net::SocketAddr,
) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    (sock, fillers, addr)
}

/// DECISIONS §2.4: dials run in each connection's task, so clients of a black-holed
/// upstream time out together, not one after another.
#[tokio::test]
async fn black_holed_upstream_does_not_serialise_accepts() {
    let (_hole, _fillers, addr) = black_hole();
    let config = toxi::server::Config {
        dial_timeout: Duration::from_millis(1500),
        ..toxi::server::Config::for_tests()
    };
    let server = server_with(config).await;
    let p = proxy(&server, "hole", addr).await;
    let start = tokio::time::Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connect(&p).await);
    }
    for c in &mut clients {
        expect_closed(c).await;
    }
    let took = start.elapsed();
    // Serial dials would take at least 4 × 1.5 s.
    assert!(
        took < Duration::from_millis(4500),
        "clients were served one after another: {took:?}"
    );
    assert!(
        took >= Duration::from_millis(1400),
        "closed before the dial timeout: {took:?}"
    );
}

/// Duplicate names in one populate are applied in turn; the first shows its final,
/// replaced (stopped) state, as in the reference.
#[tokio::test]
async fn populate_duplicate_names_report_final_state() {
    let server = server().await;
    let entry = |up: &str| toxi::registry::ProxyInput {
        protocol: Default::default(),
        name: "d".into(),
        listen: "127.0.0.1:0".into(),
        upstream: up.into(),
        enabled: true,
    };
    let (done, err) = server
        .registry()
        .populate(vec![entry("x:1"), entry("x:2")])
        .await;
    assert!(err.is_none());
    let done = done.unwrap();
    assert_eq!(done.len(), 2);
    assert!(!done[0].enabled, "replaced by the second entry");
    assert_eq!(done[0].upstream, "x:1");
    assert!(done[1].enabled);
    assert_eq!(server.registry().get("d").unwrap().upstream, "x:2");
}

fn noop_toxic(name: &str, dir: toxi::model::Direction) -> toxi::registry::ToxicSnapshot {
    toxi::registry::ToxicSnapshot {
        matcher: None,
        name: name.into(),
        stream: dir.as_str().into(),
        direction: dir,
        toxicity: 1.0,
        kind: toxi::toxics::kind("noop"),
        schedule: None,
        clients: None,
    }
}

/// Bulk streams are spliced (zero-copy through a kernel pipe) on the fast path; a noop
/// toxic added and removed in a tight loop switches the links between the fast path and
/// the toxic path while the pipe holds data. Nothing is lost, duplicated or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_integrity_while_switching_fast_and_toxic_paths() {
    use toxi::model::Direction;
    const TOTAL: usize = 48 * 1024 * 1024;
    let server = server().await;
    let p = proxy(&server, "switching", echo_upstream().await).await;
    let (mut r, w) = connect(&p).await.into_split();
    let writer = spawn_pattern_writer(w, TOTAL >> 20);
    let registry = server.registry().clone();
    let name = p.name.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn_done = done.clone();
    let churn = tokio::spawn(async move {
        let mut switches = 0u64;
        while !churn_done.load(std::sync::atomic::Ordering::Relaxed) {
            let dir = [Direction::Upstream, Direction::Downstream][switches as usize % 2];
            registry.add_toxic(&name, noop_toxic("n", dir)).unwrap();
            tokio::time::sleep(Duration::from_micros(300)).await;
            registry.remove_toxic(&name, "n").unwrap();
            tokio::time::sleep(Duration::from_micros(700)).await;
            switches += 1;
        }
        switches
    });
    let (received, digest) = sha256_to_eof(&mut r, Duration::from_secs(120)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let switches = churn.await.unwrap();
    assert_eq!(received, TOTAL);
    assert_eq!(digest, writer.await.unwrap().to_vec());
    assert!(switches > 10, "toxic churn ran: {switches} switches");
}

/// A half-close at the end of a bulk (spliced) transfer: every byte arrives before the
/// FIN, and the reply direction, bulk too, stays open and ends cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_after_bulk_transfer() {
    use sha2::{Digest, Sha256};
    const LEN: usize = 24 * 1024 * 1024 + 77;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        sock.read_to_end(&mut request).await.unwrap(); // until the client's FIN
        let digest = Sha256::digest(&request);
        sock.write_all(&digest).await.unwrap();
        sock.write_all(&pattern(LEN, 9)).await.unwrap();
        sock.shutdown().await.unwrap();
    });
    let server = server().await;
    let p = proxy(&server, "bulk_half", upstream).await;
    let mut c = connect(&p).await;
    let data = pattern(LEN, 3);
    within("bulk request", c.write_all(&data)).await.unwrap();
    c.shutdown().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), c.read_to_end(&mut reply))
        .await
        .expect("reply finished")
        .expect("clean EOF");
    assert_eq!(reply.len(), 32 + LEN);
    assert_eq!(
        reply[..32],
        Sha256::digest(&data)[..],
        "request arrived intact"
    );
    assert!(reply[32..] == pattern(LEN, 9)[..], "reply arrived intact");
}

/// A hostname upstream is resolved (and briefly cached); every address is tried in turn,
/// so `localhost` reaches an IPv4-only upstream even when `::1` comes first.
#[tokio::test]
async fn hostname_upstream_tries_every_address() {
    let up = echo_upstream().await;
    let server = server().await;
    let p = server
        .registry()
        .create(toxi::registry::ProxyInput {
            protocol: Default::default(),
            name: "byname".into(),
            listen: "127.0.0.1:0".into(),
            upstream: format!("localhost:{}", up.port()),
            enabled: true,
        })
        .await
        .unwrap();
    for i in 0..3u8 {
        let mut c = connect(&p).await;
        c.write_all(&[i]).await.unwrap();
        assert_eq!(read_n(&mut c, 1).await, [i]);
    }
}

/// DECISIONS §2.9: `/reset` handles proxies in name order, carries on past a proxy that
/// cannot start, and reports the first error.
#[tokio::test]
async fn reset_carries_on_past_a_failing_proxy() {
    let server = server().await;
    let registry = server.registry();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let up = echo_upstream().await.to_string();
    for (name, listen) in [
        ("a", "127.0.0.1:0"),
        ("b", taken.as_str()),
        ("c", "127.0.0.1:0"),
    ] {
        registry
            .create(toxi::registry::ProxyInput {
                protocol: Default::default(),
                name: name.into(),
                listen: listen.into(),
                upstream: up.clone(),
                enabled: false,
            })
            .await
            .unwrap();
        registry
            .add_toxic(
                name,
                toxi::registry::ToxicSnapshot {
                    matcher: None,
                    name: "n".into(),
                    stream: "downstream".into(),
                    direction: toxi::model::Direction::Downstream,
                    toxicity: 1.0,
                    kind: toxi::toxics::kind("noop"),
                    schedule: None,
                    clients: None,
                },
            )
            .unwrap();
    }
    let err = registry.reset().await.unwrap_err();
    assert_eq!(err.status(), 500);
    assert!(err.to_string().contains("address already in use"), "{err}");
    let (a, b, c) = (
        registry.get("a").unwrap(),
        registry.get("b").unwrap(),
        registry.get("c").unwrap(),
    );
    assert!(
        a.enabled && c.enabled,
        "proxies after the failing one are reset too"
    );
    assert!(!b.enabled);
    assert!(a.toxics.is_empty() && b.toxics.is_empty() && c.toxics.is_empty());
}

/// An upstream that starts listening only after the client connected (a test that binds
/// its upstream in a thread while it already drives the proxy): the refused dial is
/// retried within `dial_retry`, so the client is served instead of closed.
#[tokio::test]
async fn refused_dial_is_retried_within_the_window() {
    let config = toxi::server::Config {
        dial_retry: Duration::from_secs(5),
        ..toxi::server::Config::for_tests()
    };
    let server = server_with(config).await;
    let addr = dead_port().await;
    let p = proxy(&server, "late", addr).await;
    let mut c = connect(&p).await;
    c.write_all(b"early").await.unwrap();
    // The upstream comes up late: the proxy's first dials are refused meanwhile.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (mut up, _) = within("the retried dial", listener.accept()).await.unwrap();
    assert_eq!(read_n(&mut up, 5).await, b"early");
    up.write_all(b"reply").await.unwrap();
    assert_eq!(read_n(&mut c, 5).await, b"reply");
}

/// The retry window is bounded: a dead upstream closes the client once it has passed, and
/// `dial_retry: 0` closes it at once, as the reference does.
#[tokio::test]
async fn refused_dial_retry_window_is_bounded() {
    for (retry, at_least) in [
        (Duration::from_millis(400), Duration::from_millis(350)),
        (Duration::ZERO, Duration::ZERO),
    ] {
        let config = toxi::server::Config {
            dial_retry: retry,
            ..toxi::server::Config::for_tests()
        };
        let server = server_with(config).await;
        let p = proxy(&server, "dead", dead_port().await).await;
        let start = tokio::time::Instant::now();
        let mut c = connect(&p).await;
        let (data, _) = read_to_end(&mut c).await;
        let took = start.elapsed();
        assert!(data.is_empty());
        assert!(took >= at_least, "closed after {took:?}, retry {retry:?}");
        assert!(
            took < retry + Duration::from_secs(3),
            "closed after {took:?}, retry {retry:?}"
        );
    }
}

/// Racing a create and a populate on one name never leaves a listener the API cannot
/// see: the instance that lost the race stops, and its port is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_create_and_populate_leaves_no_orphaned_listener() {
    let server = server().await;
    let up = echo_upstream().await;
    for round in 0..10 {
        let (a, b) = (dead_port().await, dead_port().await);
        let name = format!("race{round}");
        let input = |listen: std::net::SocketAddr| toxi::registry::ProxyInput {
            name: name.clone(),
            listen: listen.to_string(),
            upstream: up.to_string(),
            enabled: true,
            protocol: Default::default(),
        };
        let reg = server.registry().clone();
        let (ia, ib) = (input(a), input(b));
        let reg2 = reg.clone();
        let create = tokio::spawn(async move { reg.create(ia).await });
        let populate = tokio::spawn(async move { reg2.populate(vec![ib]).await });
        let _ = create.await.unwrap();
        let _ = populate.await.unwrap();
        let shown = server.registry().get(&name).unwrap().listen;
        for port in [a, b] {
            if port.to_string() == shown {
                continue;
            }
            within("the losing listener closes", async {
                while TcpStream::connect(port).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
        }
    }
}
