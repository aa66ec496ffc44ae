//! Thread-per-core workers (`toxi::proxy::Workers`): connections spread over them, bytes stay
//! exact across workers, toxic edits reach every worker, and stopping frees everything.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use toxi::client::NewToxic;
use toxi::proxy::Workers;
use toxi::server::Config;

use crate::support::*;

/// `n` connections through `p`, each proven by a round trip.
async fn open(p: &toxi::model::ProxySnapshot, n: u8) -> Vec<tokio::net::TcpStream> {
    let mut socks = Vec::new();
    for i in 0..n {
        let mut s = connect(p).await;
        round_trip(&mut s, &[i; 11]).await;
        socks.push(s);
    }
    socks
}

/// Two workers of the test's own (so that the per-worker counts are its alone), a server
/// on them with one echo proxy, and `n` connections through it.
async fn two_workers(
    name: &str,
    n: u8,
) -> (Workers, toxi::server::Server, Vec<tokio::net::TcpStream>) {
    let workers = Workers::start(2, &format!("toxi-test-{name}"), || {}).unwrap();
    let server = server_with(Config {
        data_path: workers.data_path(),
        ..Config::for_tests()
    })
    .await;
    let p = proxy(&server, name, echo_upstream().await).await;
    let socks = open(&p, n).await;
    (workers, server, socks)
}

#[tokio::test]
async fn connections_spread_over_workers_and_stay_exact() {
    // The kernel spreads clients over the workers' listening sockets by a hash of their
    // addresses, and a worker that runs more than another hands a new client over: the
    // two stay within two connections of each other.
    let (workers, server, mut socks) = two_workers("spread", 40).await;
    let path = workers.data_path();
    let spread = path.connections();
    assert_eq!(spread.iter().sum::<usize>(), 40);
    assert!(spread[0].abs_diff(spread[1]) <= 2, "{spread:?}");

    // Streams on both workers, with a toxic added and removed mid-stream: every byte
    // arrives once and in order.
    let mut tasks = Vec::new();
    for (i, mut s) in socks.drain(..).enumerate() {
        tasks.push(tokio::spawn(async move {
            let data = pattern(256 * 1024, i as u64);
            let (mut r, mut w) = s.split();
            let (got, _) = tokio::join!(
                async {
                    let mut got = Vec::new();
                    tokio::io::AsyncReadExt::read_to_end(&mut r, &mut got)
                        .await
                        .unwrap();
                    got
                },
                async {
                    for part in data.chunks(4096) {
                        w.write_all(part).await.unwrap();
                    }
                    w.shutdown().await.unwrap();
                }
            );
            assert!(got == data, "stream {i}: {} bytes back", got.len());
        }));
    }
    let client = server.client();
    client
        .add_toxic("spread", &NewToxic::new("latency").attribute("latency", 5))
        .await
        .unwrap();
    client
        .remove_toxic("spread", "latency_downstream")
        .await
        .unwrap();
    within("streams end", async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    eventually("connections counted off", || async {
        match path.connections() {
            c if c == [0, 0] => Ok(()),
            c => Err(c),
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_toxic_reaches_connections_on_every_worker() {
    let (workers, server, mut socks) = two_workers("slow", 40).await;
    assert!(workers.data_path().connections().iter().all(|&n| n > 0));
    server
        .client()
        .add_toxic("slow", &NewToxic::new("latency").attribute("latency", 100))
        .await
        .unwrap();
    for s in &mut socks {
        let took = round_trip(s, b"ping").await;
        assert!(took >= ms(100), "round trip {took:?} on a 100 ms latency");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn stopping_the_workers_closes_their_connections() {
    let (workers, server, mut socks) = two_workers("stop", 4).await;
    let stopped = tokio::task::spawn_blocking(move || {
        let t0 = std::time::Instant::now();
        workers.shutdown(Duration::from_secs(1));
        t0.elapsed()
    });
    let took = within("workers stop", stopped).await.unwrap();
    assert!(took < patience(), "shutdown took {took:?}");
    for s in &mut socks {
        expect_closed(s).await;
    }
    drop(server);
}
