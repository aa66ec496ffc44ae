//! Toxics acting on real traffic through a real proxy. Timing tolerances are wide enough
//! for a loaded 2-core machine; precise accuracy figures live in the benchmarks.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use toxi::model::{Direction, ToxicKind};
use toxi::registry::{ProxySnapshot, ToxicSnapshot};
use toxi::server::Server;

use crate::support::*;

fn toxic(name: &str, dir: Direction, toxicity: f32, kind: ToxicKind) -> ToxicSnapshot {
    ToxicSnapshot {
        matcher: None,
        name: name.into(),
        stream: dir.as_str().into(),
        direction: dir,
        toxicity,
        kind,
        schedule: None,
        clients: None,
    }
}

fn add(server: &Server, p: &ProxySnapshot, name: &str, dir: Direction, kind: ToxicKind) {
    server
        .registry()
        .add_toxic(&p.name, toxic(name, dir, 1.0, kind))
        .expect("toxic added");
}

async fn echo_proxy(name: &str) -> (Server, ProxySnapshot) {
    let server = server().await;
    let p = proxy(&server, name, echo_upstream().await).await;
    (server, p)
}

#[tokio::test]
async fn latency_applies_per_direction() {
    let (server, p) = echo_proxy("lat").await;
    let mut c = connect(&p).await;
    let base = round_trip(&mut c, b"warm").await;
    add(
        &server,
        &p,
        "up",
        Direction::Upstream,
        toxi::toxics::kind("latency")
            .with("latency", 200)
            .with("jitter", 0),
    );
    let rtt = round_trip(&mut c, b"ping").await;
    assert!(rtt >= ms(195) && rtt < ms(200) + base + ms(250), "{rtt:?}");
    add(
        &server,
        &p,
        "down",
        Direction::Downstream,
        toxi::toxics::kind("latency")
            .with("latency", 100)
            .with("jitter", 0),
    );
    let rtt = round_trip(&mut c, b"ping").await;
    assert!(rtt >= ms(295) && rtt < ms(550), "{rtt:?}");
}

/// Latency is measured from read time, so pipelined writes do not pile up delay.
#[tokio::test]
async fn latency_is_pipelined() {
    let (server, p) = echo_proxy("pipe").await;
    add(
        &server,
        &p,
        "l",
        Direction::Upstream,
        toxi::toxics::kind("latency")
            .with("latency", 500)
            .with("jitter", 0),
    );
    let c = connect(&p).await;
    let (mut r, mut w) = c.into_split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for i in 0..5u8 {
            w.write_all(&[i]).await.unwrap();
            tokio::time::sleep(ms(100)).await;
        }
        w
    });
    let mut arrivals = Vec::new();
    for i in 0..5u8 {
        let mut b = [0u8; 1];
        within("pipelined byte", r.read_exact(&mut b))
            .await
            .unwrap();
        assert_eq!(b[0], i);
        arrivals.push(start.elapsed());
    }
    let _w = writer.await.unwrap();
    // Expected about 0.5, 0.6, 0.7, 0.8, 0.9 s; serial delays would end near 2.5 s.
    assert!(arrivals[0] >= ms(495), "{arrivals:?}");
    assert!(arrivals[4] < ms(1400), "delay piled up: {arrivals:?}");
}

#[tokio::test]
async fn stacked_latency_adds_up() {
    let (server, p) = echo_proxy("stack").await;
    add(
        &server,
        &p,
        "a",
        Direction::Upstream,
        toxi::toxics::kind("latency")
            .with("latency", 500)
            .with("jitter", 0),
    );
    add(
        &server,
        &p,
        "b",
        Direction::Upstream,
        toxi::toxics::kind("latency")
            .with("latency", 500)
            .with("jitter", 0),
    );
    let mut c = connect(&p).await;
    let rtt = round_trip(&mut c, b"x").await;
    assert!(rtt >= ms(990) && rtt < ms(1400), "{rtt:?}");
}

#[tokio::test]
async fn removing_latency_releases_held_data_at_once() {
    let (server, p) = echo_proxy("rel").await;
    add(
        &server,
        &p,
        "slow",
        Direction::Upstream,
        toxi::toxics::kind("latency")
            .with("latency", 60_000)
            .with("jitter", 0),
    );
    let mut c = connect(&p).await;
    c.write_all(b"held").await.unwrap();
    tokio::time::sleep(ms(100)).await;
    let start = Instant::now();
    server.registry().remove_toxic(&p.name, "slow").unwrap();
    assert_eq!(read_n(&mut c, 4).await, b"held");
    assert!(start.elapsed() < ms(2000));
}

#[tokio::test]
async fn huge_latency_means_forever_without_overflow() {
    let (server, p) = echo_proxy("huge").await;
    add(
        &server,
        &p,
        "max",
        Direction::Upstream,
        toxi::toxics::kind("latency")
            .with("latency", i64::MAX)
            .with("jitter", i64::MAX),
    );
    let mut c = connect(&p).await;
    c.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    assert!(
        tokio::time::timeout(ms(300), c.read(&mut b)).await.is_err(),
        "data must be held"
    );
    server.registry().remove_toxic(&p.name, "max").unwrap();
    assert_eq!(read_n(&mut c, 1).await, b"x");
}

#[tokio::test]
async fn bandwidth_limits_the_rate() {
    let (server, p) = echo_proxy("bw").await;
    // 100 KB/s downstream: 250 KB take about 2.5 s.
    add(
        &server,
        &p,
        "bw",
        Direction::Downstream,
        toxi::toxics::kind("bandwidth").with("rate", 100),
    );
    let c = connect(&p).await;
    let (mut r, mut w) = c.into_split();
    let data = pattern(250_000, 3);
    let expected = data.clone();
    let start = Instant::now();
    tokio::spawn(async move { w.write_all(&data).await.unwrap() });
    let mut got = vec![0u8; 250_000];
    within("bandwidth transfer", r.read_exact(&mut got))
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(got, expected);
    assert!(took >= ms(2300) && took < ms(3300), "{took:?}");
}

/// `rate: 0` holds all data until the toxic is removed (testcontainers' "cut connection").
#[tokio::test]
async fn bandwidth_zero_holds_until_removed() {
    let (server, p) = echo_proxy("cut").await;
    add(
        &server,
        &p,
        "cut",
        Direction::Upstream,
        toxi::toxics::kind("bandwidth").with("rate", 0),
    );
    let mut c = connect(&p).await;
    c.write_all(b"partitioned").await.unwrap();
    let mut b = [0u8; 1];
    assert!(tokio::time::timeout(ms(300), c.read(&mut b)).await.is_err());
    server.registry().remove_toxic(&p.name, "cut").unwrap();
    assert_eq!(read_n(&mut c, 11).await, b"partitioned");
}

#[tokio::test]
async fn slow_close_delays_the_close() {
    let (server, p) = echo_proxy("sc").await;
    add(
        &server,
        &p,
        "sc",
        Direction::Downstream,
        toxi::toxics::kind("slow_close").with("delay", 400),
    );
    let mut c = connect(&p).await;
    c.write_all(b"bye").await.unwrap();
    assert_eq!(read_n(&mut c, 3).await, b"bye");
    let start = Instant::now();
    c.shutdown().await.unwrap(); // the echo upstream closes in turn
    expect_closed(&mut c).await;
    let took = start.elapsed();
    assert!(took >= ms(390) && took < ms(1500), "{took:?}");
}

#[tokio::test]
async fn timeout_drops_data_and_closes_when_idle() {
    let (server, p) = echo_proxy("to").await;
    add(
        &server,
        &p,
        "to",
        Direction::Upstream,
        toxi::toxics::kind("timeout").with("timeout", 300),
    );
    let mut c = connect(&p).await;
    let start = Instant::now();
    c.write_all(b"dropped").await.unwrap();
    let (data, _) = read_to_end(&mut c).await;
    assert!(data.is_empty(), "timeout drops data");
    let took = start.elapsed();
    assert!(took >= ms(290) && took < ms(1500), "{took:?}");
}

#[tokio::test]
async fn timeout_zero_holds_and_removal_closes() {
    let (server, p) = echo_proxy("to0").await;
    add(
        &server,
        &p,
        "to",
        Direction::Upstream,
        toxi::toxics::kind("timeout").with("timeout", 0),
    );
    let mut c = connect(&p).await;
    c.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    assert!(
        tokio::time::timeout(ms(300), c.read(&mut b)).await.is_err(),
        "held open"
    );
    server.registry().remove_toxic(&p.name, "to").unwrap();
    expect_closed(&mut c).await;
}

async fn expect_reset(c: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let r = within("reset", async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) => return Ok(0),
                Ok(_) => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    match r {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(_) => panic!("got a clean EOF instead of RST"),
    }
}

#[tokio::test]
async fn reset_peer_sends_rst_on_new_connections() {
    let (server, p) = echo_proxy("rst").await;
    add(
        &server,
        &p,
        "rst",
        Direction::Upstream,
        toxi::toxics::kind("reset_peer").with("timeout", 100),
    );
    let mut c = connect(&p).await;
    let start = Instant::now();
    c.write_all(b"boom").await.unwrap();
    expect_reset(&mut c).await;
    assert!(start.elapsed() >= ms(95));
}

/// DECISIONS §2.5: a real RST also on connections opened before the toxic was added.
#[tokio::test]
async fn reset_peer_sends_rst_on_open_connections() {
    let (server, p) = echo_proxy("rst2").await;
    let mut c = connect(&p).await;
    round_trip(&mut c, b"before").await;
    add(
        &server,
        &p,
        "rst",
        Direction::Upstream,
        toxi::toxics::kind("reset_peer").with("timeout", 0),
    );
    c.write_all(b"boom").await.unwrap();
    expect_reset(&mut c).await;
}

#[tokio::test]
async fn reset_peer_leaves_idle_connections_alone() {
    let (server, p) = echo_proxy("rst3").await;
    add(
        &server,
        &p,
        "rst",
        Direction::Upstream,
        toxi::toxics::kind("reset_peer").with("timeout", 0),
    );
    let mut c = connect(&p).await;
    let mut b = [0u8; 1];
    assert!(
        tokio::time::timeout(ms(300), c.read(&mut b)).await.is_err(),
        "idle stays open"
    );
}

#[tokio::test]
async fn limit_data_truncates_then_closes() {
    let (server, p) = echo_proxy("lim").await;
    add(
        &server,
        &p,
        "lim",
        Direction::Downstream,
        toxi::toxics::kind("limit_data").with("bytes", 10),
    );
    let mut c = connect(&p).await;
    c.write_all(b"123456").await.unwrap();
    assert_eq!(read_n(&mut c, 6).await, b"123456");
    c.write_all(b"abcdefgh").await.unwrap();
    let (rest, _) = read_to_end(&mut c).await;
    assert_eq!(rest, b"abcd");
}

#[tokio::test]
async fn limit_data_counter_survives_updates() {
    let (server, p) = echo_proxy("lim2").await;
    add(
        &server,
        &p,
        "lim",
        Direction::Downstream,
        toxi::toxics::kind("limit_data").with("bytes", 8),
    );
    let mut c = connect(&p).await;
    round_trip(&mut c, b"12345").await;
    server
        .registry()
        .update_toxic(&p.name, "lim", |t| {
            t.kind = toxi::toxics::kind("limit_data").with("bytes", 9);
            Ok(())
        })
        .unwrap();
    c.write_all(b"abcdef").await.unwrap();
    let (rest, _) = read_to_end(&mut c).await;
    assert_eq!(rest, b"abcd", "5 already sent, limit 9 leaves 4");
}

#[tokio::test]
async fn slicer_rebuilds_byte_exact() {
    let (server, p) = echo_proxy("sl").await;
    add(
        &server,
        &p,
        "sl",
        Direction::Downstream,
        toxi::toxics::kind("slicer")
            .with("average_size", 1024)
            .with("size_variation", 512)
            .with("delay", 10),
    );
    let c = connect(&p).await;
    let (mut r, mut w) = c.into_split();
    let data = pattern(480_000, 9);
    let expected = data.clone();
    tokio::spawn(async move { w.write_all(&data).await.unwrap() });
    let mut got = vec![0u8; 480_000];
    within("sliced transfer", r.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn slicer_cuts_into_single_bytes() {
    let (server, p) = echo_proxy("sl1").await;
    add(
        &server,
        &p,
        "sl",
        Direction::Downstream,
        toxi::toxics::kind("slicer")
            .with("average_size", 1)
            .with("size_variation", 0)
            .with("delay", 20_000),
    );
    let mut c = connect(&p).await;
    let msg = b"abcdefghijklmnopqrstuvwx";
    c.write_all(msg).await.unwrap();
    let mut reads = 0;
    let mut got = Vec::new();
    while got.len() < msg.len() {
        let mut b = [0u8; 64];
        let n = within("slice", c.read(&mut b)).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&b[..n]);
        reads += 1;
    }
    assert_eq!(got, msg);
    // 20 ms between one-byte pieces: reads see them one at a time (allow a few merges).
    assert!(reads >= 20, "{reads} reads");
}

#[tokio::test]
async fn toxicity_zero_and_one() {
    let (server, p) = echo_proxy("tox").await;
    let registry = server.registry();
    registry
        .add_toxic(
            &p.name,
            toxic(
                "never",
                Direction::Upstream,
                0.0,
                toxi::toxics::kind("latency")
                    .with("latency", 1000)
                    .with("jitter", 0),
            ),
        )
        .unwrap();
    let count = || activations(&server, &p.name, "never", "latency", Direction::Upstream);
    let mut c = connect(&p).await;
    round_trip(&mut c, b"a").await;
    assert_eq!(count(), 0, "toxicity 0 never applies");
    registry
        .update_toxic(&p.name, "never", |t| {
            t.toxicity = 1.0;
            Ok(())
        })
        .unwrap();
    // The live link re-rolls on the toxicity update and the toxic starts acting on it.
    eventually("the re-roll", || async {
        match count() {
            1 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    round_trip(&mut c, b"b").await;
    assert_eq!(count(), 1);
}

/// Which of `n` sequential connections a 50 % latency toxic applies to, judged by its
/// activation counter.
async fn roll_pattern(seed: i64, n: usize) -> Vec<bool> {
    let config = toxi::server::Config {
        seed: Some(seed),
        ..toxi::server::Config::for_tests()
    };
    let server = server_with(config).await;
    let p = proxy(&server, "seeded", echo_upstream().await).await;
    server
        .registry()
        .add_toxic(
            &p.name,
            toxic(
                "half",
                Direction::Upstream,
                0.5,
                toxi::toxics::kind("latency")
                    .with("latency", 10)
                    .with("jitter", 0),
            ),
        )
        .unwrap();
    let count = || activations(&server, &p.name, "half", "latency", Direction::Upstream);
    let mut pattern = Vec::new();
    for _ in 0..n {
        let before = count();
        let mut c = connect(&p).await;
        // Once a byte made the round trip, the link has rolled.
        round_trip(&mut c, b"?").await;
        pattern.push(count() > before);
    }
    pattern
}

/// DECISIONS §2.3: the same seed and the same sequence give the same toxicity rolls.
#[tokio::test]
async fn seed_reproduces_toxicity_rolls() {
    let (a, b) = tokio::join!(roll_pattern(42, 12), roll_pattern(42, 12));
    assert_eq!(a, b);
    assert!(
        a.iter().any(|&x| x) && a.iter().any(|&x| !x),
        "a 50 % toxic mixes: {a:?}"
    );
}

/// DECISIONS §2.12: adding or removing an unrelated toxic does not re-roll.
#[tokio::test]
async fn unrelated_changes_do_not_reroll() {
    let (server, p) = echo_proxy("stable").await;
    let registry = server.registry();
    registry
        .add_toxic(
            &p.name,
            toxic(
                "half",
                Direction::Upstream,
                0.5,
                toxi::toxics::kind("latency")
                    .with("latency", 150)
                    .with("jitter", 0),
            ),
        )
        .unwrap();
    let count = || activations(&server, &p.name, "half", "latency", Direction::Upstream);
    let mut conns = Vec::new();
    for _ in 0..8 {
        let mut c = connect(&p).await;
        round_trip(&mut c, b"?").await;
        conns.push(c);
    }
    let rolled = count();
    let other = || activations(&server, &p.name, "other", "noop", Direction::Upstream);
    registry
        .add_toxic(
            &p.name,
            toxic(
                "other",
                Direction::Upstream,
                1.0,
                toxi::toxics::kind("noop"),
            ),
        )
        .unwrap();
    // Every open link has picked the new toxic up.
    eventually("the new toxic on every link", || async {
        match other() {
            8 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    registry.remove_toxic(&p.name, "other").unwrap();
    for c in &mut conns {
        round_trip(c, b"!").await;
    }
    // A re-roll would have counted every link that came out active again.
    assert_eq!(count(), rolled, "no link re-rolled");
}

/// Hundreds of MiB in both directions while toxics are added, updated and removed in a
/// tight loop: nothing is lost, duplicated or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_under_toxic_churn() {
    const TOTAL: usize = 256 * 1024 * 1024;
    let (server, p) = echo_proxy("churn").await;
    let c = connect(&p).await;
    let (mut r, w) = c.into_split();
    let writer = spawn_pattern_writer(w, TOTAL >> 20);
    let registry = server.registry().clone();
    let name = p.name.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn_done = done.clone();
    let churn = tokio::spawn(async move {
        let kinds = [
            toxi::toxics::kind("latency")
                .with("latency", 1)
                .with("jitter", 1),
            toxi::toxics::kind("noop"),
            toxi::toxics::kind("slicer")
                .with("average_size", 16 * 1024)
                .with("size_variation", 8 * 1024)
                .with("delay", 0),
            toxi::toxics::kind("bandwidth").with("rate", 1_000_000),
            toxi::toxics::kind("limit_data").with("bytes", i64::MAX),
        ];
        let mut ops = 0u64;
        let mut i = 0usize;
        while !churn_done.load(std::sync::atomic::Ordering::Relaxed) {
            let dir = if i % 2 == 0 {
                Direction::Upstream
            } else {
                Direction::Downstream
            };
            let t = format!("t{}", i % 6);
            let kind = kinds[i % kinds.len()].clone();
            if registry
                .add_toxic(&name, toxic(&t, dir, 1.0, kind))
                .is_err()
            {
                let _ = registry.update_toxic(&name, &t, |s| {
                    s.toxicity = if s.toxicity > 0.5 { 0.3 } else { 1.0 };
                    Ok(())
                });
                let _ = registry.remove_toxic(&name, &t);
            }
            ops += 1;
            i += 1;
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        ops
    });
    let (received, digest) = sha256_to_eof(&mut r, Duration::from_secs(300)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let ops = churn.await.unwrap();
    let sent_hash = writer.await.unwrap();
    assert_eq!(received, TOTAL);
    assert_eq!(digest, sent_hash.to_vec());
    assert!(ops > 100, "churn ran: {ops} operations");
}

/// A closing toxic keeps order: with `[limit_data bytes=N, latency]` exactly N bytes
/// arrive, after the latency, and then the connection closes.
#[tokio::test]
async fn limit_data_before_latency_delivers_exactly_n_bytes() {
    let (server, p) = echo_proxy("limit_then_lat").await;
    add(
        &server,
        &p,
        "limit",
        Direction::Downstream,
        toxi::toxics::kind("limit_data").with("bytes", 1000),
    );
    add(
        &server,
        &p,
        "lat",
        Direction::Downstream,
        toxi::toxics::kind("latency")
            .with("latency", 200)
            .with("jitter", 0),
    );
    let mut c = connect(&p).await;
    let msg = pattern(5000, 3);
    let start = Instant::now();
    c.write_all(&msg).await.unwrap();
    let (got, _) = read_to_end(&mut c).await;
    assert_eq!(got, msg[..1000], "exactly the limit, in order");
    assert!(start.elapsed() >= ms(190), "through the latency");
}

/// The byte budget: a sender into a 60 s latency toxic is stopped after about the budget,
/// instead of filling the proxy's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxic_chain_holds_at_most_its_byte_budget() {
    const BUDGET: usize = 256 * 1024;
    let server = server_with(toxi::server::Config {
        toxic_buffer_bytes: BUDGET,
        ..toxi::server::Config::for_tests()
    })
    .await;
    let p = proxy(&server, "budget", echo_upstream().await).await;
    add(
        &server,
        &p,
        "lat",
        Direction::Upstream,
        toxi::toxics::kind("latency")
            .with("latency", 60_000)
            .with("jitter", 0),
    );
    let mut c = connect(&p).await;
    // Write until the sockets push back; count what the proxy took off the client.
    let block = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    while sent < 64 << 20 {
        match tokio::time::timeout(ms(500), c.write_all(&block)).await {
            Ok(r) => {
                r.unwrap();
                sent += block.len();
            }
            Err(_) => break,
        }
    }
    // The client's and the proxy's kernel buffers take some; the proxy holds the budget.
    assert!(
        sent < 32 << 20,
        "backpressure: the client wrote {sent} bytes"
    );
}

/// A zero-delay chunk is never held back until the next one: concurrent ping-pong
/// connections through latency toxics (delays of 0 and 1 ms), new connections starting
/// all the time while a toxic is added and removed, so chains also arrive on a
/// connection's first chunk. Each client sends its next chunk only after the echo of the
/// previous one, so a chunk held until the next chunk stalls its connection for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_delay_chunks_are_never_held_back() {
    const CONNS: usize = 70;
    const ROUNDS: usize = 6;
    const PINGS: usize = 8;
    let (server, p) = echo_proxy("zero").await;
    let jitter = toxi::toxics::kind("latency")
        .with("latency", 1)
        .with("jitter", 1);
    add(&server, &p, "down", Direction::Downstream, jitter.clone());
    add(
        &server,
        &p,
        "up",
        Direction::Upstream,
        toxi::toxics::kind("latency")
            .with("latency", 0)
            .with("jitter", 0),
    );
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let registry = server.registry().clone();
    let name = p.name.clone();
    let churn_done = done.clone();
    let churn = tokio::spawn(async move {
        let mut on = false;
        while !churn_done.load(std::sync::atomic::Ordering::Relaxed) {
            if on {
                let _ = registry.remove_toxic(&name, "flip");
            } else {
                let _ = registry.add_toxic(
                    &name,
                    toxic("flip", Direction::Downstream, 1.0, jitter.clone()),
                );
            }
            on = !on;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
    let mut tasks = Vec::new();
    for i in 0..CONNS {
        let listen = p.listen.clone();
        tasks.push(tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            for round in 0..ROUNDS {
                let mut c = within("connect", TcpStream::connect(listen.as_str()))
                    .await
                    .unwrap();
                for ping in 0..PINGS {
                    let msg = format!("{i}:{round}:{ping};");
                    let start = Instant::now();
                    c.write_all(msg.as_bytes()).await.unwrap();
                    let mut buf = vec![0u8; msg.len()];
                    // Far below the general patience: a held chunk waits forever here.
                    match tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut buf)).await
                    {
                        Ok(r) => {
                            r.unwrap();
                        }
                        Err(_) => panic!("chunk {msg} held back (connection {i}, round {round})"),
                    }
                    assert_eq!(buf, msg.as_bytes());
                    worst = worst.max(start.elapsed());
                }
            }
            worst
        }));
    }
    let mut worst = Duration::ZERO;
    for t in tasks {
        worst = worst.max(within("a ping-pong client", t).await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.await.unwrap();
    eprintln!("worst round trip through 0-1 ms latency with {CONNS} connections: {worst:?}");
}
