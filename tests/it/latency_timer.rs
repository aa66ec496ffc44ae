//! The latency toxic's timer: waits never end before the configured latency (stacked
//! toxics too), and waits that are pending cost no CPU. Its precision is a benchmark
//! figure (`latency`), not a test.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use toxi::model::{Direction, ToxicKind};
use toxi::registry::{ProxySnapshot, ToxicSnapshot};
use toxi::server::Server;

use crate::support::*;

fn latency(ms: i64) -> ToxicKind {
    toxi::toxics::kind("latency")
        .with("latency", ms)
        .with("jitter", 0)
}

fn add(server: &Server, p: &ProxySnapshot, name: &str, dir: Direction, kind: ToxicKind) {
    server
        .registry()
        .add_toxic(&p.name, ToxicSnapshot::new(name, dir, kind))
        .expect("toxic added");
}

/// Sends `n` numbered 8-byte messages `gap` apart through `p` (an echo upstream) and
/// returns each one's time from just before its write to just after it came back.
async fn delays(p: &ProxySnapshot, n: u64, gap: Duration) -> Vec<Duration> {
    let (mut r, mut w) = connect(p).await.into_split();
    let writer = tokio::spawn(async move {
        let mut sent = Vec::new();
        for i in 0..n {
            sent.push(Instant::now());
            w.write_all(&i.to_le_bytes()).await.unwrap();
            tokio::time::sleep(gap).await;
        }
        (sent, w)
    });
    let mut arrived = Vec::new();
    for i in 0..n {
        let mut b = [0u8; 8];
        within("echoed message", r.read_exact(&mut b))
            .await
            .unwrap();
        arrived.push(Instant::now());
        assert_eq!(u64::from_le_bytes(b), i, "order kept");
    }
    let (sent, _w) = writer.await.unwrap();
    sent.iter().zip(&arrived).map(|(s, a)| *a - *s).collect()
}

/// Every message is delayed by at least the sum of the latencies on its way, whether
/// its wait ends on the coarse timer or the fine one: one toxic, two stacked in one
/// direction, one in each direction. Gaps shorter than the latency keep several
/// messages in flight; a few are pipelined back to back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_never_end_early() {
    let server = server().await;
    let echo = echo_upstream().await;
    let cases: [(&str, &[(Direction, i64)]); 4] = [
        ("timer_one", &[(Direction::Upstream, 30)]),
        ("timer_short", &[(Direction::Upstream, 1)]),
        (
            "timer_stacked",
            &[(Direction::Upstream, 10), (Direction::Upstream, 20)],
        ),
        (
            "timer_both",
            &[(Direction::Upstream, 15), (Direction::Downstream, 15)],
        ),
    ];
    let mut runs = Vec::new();
    for (name, toxics) in cases {
        let p = proxy(&server, name, echo).await;
        for (i, (dir, ms)) in toxics.iter().enumerate() {
            add(&server, &p, &format!("l{i}"), *dir, latency(*ms));
        }
        let total = ms(toxics.iter().map(|(_, ms)| *ms as u64).sum());
        runs.push(tokio::spawn(async move {
            for gap in [ms(7), Duration::ZERO] {
                for (i, d) in delays(&p, 20, gap).await.into_iter().enumerate() {
                    assert!(d >= total, "{name}: message {i} took {d:?} < {total:?}");
                }
            }
        }));
    }
    for run in runs {
        run.await.unwrap();
    }
}

/// CPU time this thread has used.
#[cfg(target_os = "linux")]
fn thread_cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid, and `ru` is a valid out-pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// 50 connections hold data in a 5 s latency: while the waits are pending the proxy does
/// no work (nothing spins, nothing polls). On a current-thread runtime every task
/// runs on this thread (the data path too: this server does not use the suite's
/// workers), so its CPU time is the whole server's.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "current_thread")]
async fn pending_latency_waits_do_not_burn_cpu() {
    let server = Server::start(toxi::server::Config::for_tests())
        .await
        .expect("server starts");
    let p = proxy(&server, "timer_idle", echo_upstream().await).await;
    add(&server, &p, "l", Direction::Upstream, latency(5000));
    let mut conns = Vec::new();
    for i in 0..50u8 {
        let mut c = connect(&p).await;
        c.write_all(&[i]).await.unwrap();
        conns.push(c);
    }
    // Let every link take its byte in and settle on its wait.
    tokio::time::sleep(ms(200)).await;
    let (cpu0, t0) = (thread_cpu(), std::time::Instant::now());
    tokio::time::sleep(ms(1000)).await;
    let (cpu, wall) = (thread_cpu() - cpu0, t0.elapsed());
    assert!(
        cpu.as_secs_f64() < 0.2 * wall.as_secs_f64(),
        "{cpu:?} of CPU in {wall:?} with 50 pending waits"
    );
    // The data still arrives, after its latency.
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(read_n(c, 1).await, [i as u8]);
    }
}
