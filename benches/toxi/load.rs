//! Load-generator primitives: one measurement against one address (direct or through the
//! proxy). Every function is bounded in time and returns an error instead of hanging.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use crate::upstream::{HELLO_RESPONSE, ONESHOT_LEN};

pub type Res<T> = Result<T, String>;

/// Size of each write in the bulk figures.
pub const BLOCK: usize = 64 * 1024;

/// A shared block of payload, so streaming clients allocate nothing per write.
pub static PAYLOAD: [u8; BLOCK] = [0xA5; BLOCK];

/// Awaits `f` for at most `limit`.
pub async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Res<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: timed out after {limit:?}")),
    }
}

pub async fn connect(addr: SocketAddr) -> Res<TcpStream> {
    let s = within(Duration::from_secs(5), "connect", TcpStream::connect(addr)).await?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(s)
}

/// One bulk stream into the sink: write for `dur`, half-close, wait for the sink's byte
/// count. Returns (bytes, elapsed until the count arrived).
pub async fn bulk_stream(
    addr: SocketAddr,
    dur: Duration,
    start: Option<Arc<Barrier>>,
) -> Res<(u64, Duration)> {
    let mut s = connect(addr).await?;
    if let Some(b) = start {
        b.wait().await;
    }
    within(dur + Duration::from_secs(20), "bulk stream", async {
        let t0 = Instant::now();
        let mut sent = 0u64;
        while t0.elapsed() < dur {
            s.write_all(&PAYLOAD).await?;
            sent += BLOCK as u64;
        }
        s.shutdown().await?;
        let mut ack = [0u8; 8];
        s.read_exact(&mut ack).await?;
        let got = u64::from_le_bytes(ack);
        if got != sent {
            return Err(std::io::Error::other(format!(
                "sink got {got} of {sent} bytes"
            )));
        }
        Ok((got, t0.elapsed()))
    })
    .await
}

/// Throughput in bytes/s of one bulk stream.
pub async fn bulk(addr: SocketAddr, dur: Duration) -> Res<f64> {
    let (bytes, elapsed) = bulk_stream(addr, dur, None).await?;
    Ok(bytes as f64 / elapsed.as_secs_f64())
}

/// Aggregate throughput in bytes/s of `n` bulk streams started together.
pub async fn bulk_parallel(addr: SocketAddr, n: usize, dur: Duration) -> Res<f64> {
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(bulk_stream(addr, dur, Some(barrier.clone()))))
        .collect();
    let mut total = 0u64;
    let mut longest = Duration::ZERO;
    for t in tasks {
        let (bytes, elapsed) = t.await.map_err(|e| e.to_string())??;
        total += bytes;
        longest = longest.max(elapsed);
    }
    Ok(total as f64 / longest.as_secs_f64())
}

/// Allocation counts while one stream runs: returns (bytes written in the window,
/// proxy-thread allocations, other-thread allocations) for a window of `dur` after a warm-up.
pub async fn bulk_allocs(addr: SocketAddr, dur: Duration) -> Res<(u64, u64, u64)> {
    let mut s = connect(addr).await?;
    within(
        dur + Duration::from_secs(20),
        "bulk stream (allocations)",
        async {
            let warm = Instant::now();
            while warm.elapsed() < Duration::from_millis(200) {
                s.write_all(&PAYLOAD).await?;
            }
            let before = crate::alloc::snapshot();
            let t0 = Instant::now();
            let mut sent = 0u64;
            while t0.elapsed() < dur {
                s.write_all(&PAYLOAD).await?;
                sent += BLOCK as u64;
            }
            let after = crate::alloc::snapshot();
            s.shutdown().await?;
            let mut ack = [0u8; 8];
            s.read_exact(&mut ack).await?;
            Ok::<_, std::io::Error>((
                sent,
                after.proxy_allocs - before.proxy_allocs,
                after.other_allocs - before.other_allocs,
            ))
        },
    )
    .await
}

/// Ping-pong of 1..=64-byte messages over one echo connection; returns RTTs in ns, sorted.
/// Unmeasured ping-pongs before a round-trip sample.
pub const RTT_WARMUP: usize = 200;

pub async fn rtt(addr: SocketAddr, iters: usize) -> Res<Vec<u64>> {
    let mut s = connect(addr).await?;
    let out = [0x42u8; 64];
    let mut back = [0u8; 64];
    let mut samples = Vec::with_capacity(iters);
    within(Duration::from_secs(30), "ping-pong", async {
        for i in 0..(iters + RTT_WARMUP) {
            let len = 1 + i % 64;
            let t0 = Instant::now();
            s.write_all(&out[..len]).await?;
            s.read_exact(&mut back[..len]).await?;
            let ns = t0.elapsed().as_nanos() as u64;
            if i >= RTT_WARMUP {
                samples.push(ns);
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await?;
    samples.sort_unstable();
    Ok(samples)
}

/// 64 KiB request, 64 KiB echoed response, over one connection; returns requests/s.
pub async fn rr64k(addr: SocketAddr, dur: Duration) -> Res<f64> {
    let mut s = connect(addr).await?;
    let mut resp = vec![0u8; BLOCK];
    within(
        dur + Duration::from_secs(20),
        "64 KiB request/response",
        async {
            let t0 = Instant::now();
            let mut count = 0u64;
            while t0.elapsed() < dur {
                let (mut r, mut w) = s.split();
                let (a, b) = tokio::join!(w.write_all(&PAYLOAD), r.read_exact(&mut resp));
                a?;
                b?;
                count += 1;
            }
            Ok::<_, std::io::Error>(count as f64 / t0.elapsed().as_secs_f64())
        },
    )
    .await
}

/// New connections per second: `conc` workers each loop connect → 16-byte request →
/// 16-byte response → EOF (the server closes first) for `dur`.
/// Returns (connections per second, connections made).
pub async fn conn_rate(addr: SocketAddr, dur: Duration, conc: usize) -> Res<(f64, u64)> {
    let t0 = Instant::now();
    let errors = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..conc)
        .map(|_| {
            let errors = errors.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                let req = [7u8; ONESHOT_LEN];
                while t0.elapsed() < dur {
                    let one = async {
                        let mut s = TcpStream::connect(addr).await?;
                        s.set_nodelay(true)?;
                        s.write_all(&req).await?;
                        let mut resp = [0u8; ONESHOT_LEN + 1];
                        let mut got = 0;
                        loop {
                            match s.read(&mut resp[got..]).await? {
                                0 => break,
                                n => got += n,
                            }
                            if got > ONESHOT_LEN {
                                break;
                            }
                        }
                        if got != ONESHOT_LEN {
                            return Err(std::io::Error::other("short response"));
                        }
                        Ok::<_, std::io::Error>(())
                    };
                    match tokio::time::timeout(Duration::from_secs(5), one).await {
                        Ok(Ok(())) => done += 1,
                        _ => {
                            if errors.fetch_add(1, Relaxed) > 100 {
                                break;
                            }
                        }
                    }
                }
                done
            })
        })
        .collect();
    let mut total = 0u64;
    for w in workers {
        total += within(dur + Duration::from_secs(30), "connection worker", async {
            w.await.map_err(|e| e.to_string())
        })
        .await?;
    }
    let errs = errors.load(Relaxed);
    if errs > 0 {
        return Err(format!("{errs} failed connections ({total} succeeded)"));
    }
    Ok((total as f64 / t0.elapsed().as_secs_f64(), total))
}

/// Reads from a source connection: discards `warm`, then returns bytes/s over `window`.
pub async fn drain_rate(addr: SocketAddr, warm: Duration, window: Duration) -> Res<f64> {
    let mut s = connect(addr).await?;
    let mut buf = vec![0u8; BLOCK];
    within(
        warm + window + Duration::from_secs(20),
        "draining the source",
        async {
            let t0 = Instant::now();
            while t0.elapsed() < warm {
                if s.read(&mut buf).await? == 0 {
                    return Err(std::io::Error::other("source closed"));
                }
            }
            let t1 = Instant::now();
            let mut got = 0u64;
            while t1.elapsed() < window {
                match s.read(&mut buf).await? {
                    0 => return Err(std::io::Error::other("source closed")),
                    n => got += n as u64,
                }
            }
            Ok(got as f64 / t1.elapsed().as_secs_f64())
        },
    )
    .await
}

/// Sends `bytes` into the sink as fast as the path takes them; returns achieved bytes/s
/// measured until the sink's count arrives.
pub async fn paced_transfer(addr: SocketAddr, bytes: u64, limit: Duration) -> Res<f64> {
    let mut s = connect(addr).await?;
    within(limit, "paced transfer", async {
        let t0 = Instant::now();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(BLOCK as u64) as usize;
            s.write_all(&PAYLOAD[..n]).await?;
            left -= n as u64;
        }
        s.shutdown().await?;
        let mut ack = [0u8; 8];
        s.read_exact(&mut ack).await?;
        if u64::from_le_bytes(ack) != bytes {
            return Err(std::io::Error::other("sink count mismatch"));
        }
        Ok(bytes as f64 / t0.elapsed().as_secs_f64())
    })
    .await
}

/// Pipelined writes: `n` 16-byte messages, `gap` apart, on one echo connection, without
/// waiting for answers. Returns each message's send-to-echo delay, in send order.
pub async fn burst(addr: SocketAddr, n: usize, gap: Duration) -> Res<Vec<Duration>> {
    let s = connect(addr).await?;
    let (mut r, mut w) = s.into_split();
    let base = Instant::now();
    let sender = tokio::spawn(async move {
        let mut sent = Vec::with_capacity(n);
        for i in 0..n {
            let mut msg = [0u8; 16];
            msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
            sent.push(Instant::now());
            w.write_all(&msg).await?;
            tokio::time::sleep_until((base + gap * (i as u32 + 1)).into()).await;
        }
        Ok::<_, std::io::Error>((sent, w))
    });
    let mut arrived = Vec::with_capacity(n);
    within(Duration::from_secs(20), "burst echo", async {
        let mut msg = [0u8; 16];
        for _ in 0..n {
            r.read_exact(&mut msg).await?;
            arrived.push(Instant::now());
        }
        Ok::<_, std::io::Error>(())
    })
    .await?;
    let (sent, _w) = sender
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(sent.iter().zip(&arrived).map(|(s, a)| *a - *s).collect())
}

/// Holds `n` idle connections open, each proven end to end by a one-byte echo.
pub async fn open_idle(addr: SocketAddr, n: usize) -> Res<Vec<TcpStream>> {
    let mut conns = Vec::with_capacity(n);
    let batch = 64;
    let mut opened = 0;
    while opened < n {
        let k = batch.min(n - opened);
        let tasks: Vec<_> = (0..k)
            .map(|_| {
                tokio::spawn(async move {
                    let mut s = connect(addr).await?;
                    within(Duration::from_secs(10), "idle echo", async {
                        s.write_all(b"x").await?;
                        let mut b = [0u8; 1];
                        s.read_exact(&mut b).await?;
                        Ok::<_, std::io::Error>(())
                    })
                    .await?;
                    Ok::<_, String>(s)
                })
            })
            .collect();
        for t in tasks {
            conns.push(t.await.map_err(|e| e.to_string())??);
        }
        opened += k;
    }
    Ok(conns)
}

/// `n` connections writing 16 KiB blocks into the sink until `stop`; counts bytes written
/// per connection.
pub struct Streams {
    stop: Arc<AtomicBool>,
    counts: Arc<Vec<AtomicU64>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Streams {
    pub async fn start(addr: SocketAddr, n: usize, max_life: Duration) -> Res<Streams> {
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let mut tasks = Vec::with_capacity(n);
        let mut conns = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
            let opening: Vec<_> = chunk.iter().map(|_| tokio::spawn(connect(addr))).collect();
            for o in opening {
                conns.push(o.await.map_err(|e| e.to_string())??);
            }
        }
        let t0 = Instant::now();
        for (i, mut s) in conns.into_iter().enumerate() {
            let (stop, counts) = (stop.clone(), counts.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Relaxed) && t0.elapsed() < max_life {
                    let w = tokio::time::timeout(
                        Duration::from_millis(50),
                        s.write_all(&PAYLOAD[..16 * 1024]),
                    )
                    .await;
                    match w {
                        Ok(Ok(())) => {
                            counts[i].fetch_add(16 * 1024, Relaxed);
                        }
                        Ok(Err(_)) => return,
                        Err(_) => {} // blocked (a slow toxic): check the stop flag again
                    }
                }
            }));
        }
        Ok(Streams {
            stop,
            counts,
            tasks,
        })
    }

    /// Bytes written so far by each connection.
    pub fn per_stream(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Relaxed)).collect()
    }

    pub async fn stop(self) {
        self.stop.store(true, Relaxed);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }
}

/// p-th quantile (0..=1) of sorted values.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One 16-byte echo round trip on an open connection.
pub async fn ping(s: &mut TcpStream) -> Res<Duration> {
    within(Duration::from_secs(10), "ping", async {
        let t0 = Instant::now();
        s.write_all(&[1u8; 16]).await?;
        let mut back = [0u8; 16];
        s.read_exact(&mut back).await?;
        Ok::<_, std::io::Error>(t0.elapsed())
    })
    .await
}

/// HTTP/1.1 requests per second over `conns` keep-alive connections, each sending
/// `GET path` and reading the whole response (with the bench's [`crate::http::Client`])
/// in a loop for `dur`. Every response must be a 200 of `body_len` bytes.
pub async fn http_rate(
    addr: SocketAddr,
    path: &'static str,
    body_len: usize,
    conns: usize,
    dur: Duration,
) -> Res<f64> {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        tasks.push(tokio::spawn(async move {
            let mut c = crate::http::Client::new(addr, Duration::from_secs(10));
            let mut count = 0u64;
            while t0.elapsed() < dur {
                let r = c
                    .request("GET", path, None)
                    .await
                    .map_err(|e| format!("GET {path}: {e}"))?;
                if r.status != 200 || r.body.len() != body_len {
                    return Err(format!(
                        "GET {path}: status {}, {} body bytes",
                        r.status,
                        r.body.len()
                    ));
                }
                count += 1;
            }
            Ok::<_, String>(count)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.map_err(|e| e.to_string())??;
    }
    Ok(total as f64 / t0.elapsed().as_secs_f64())
}

/// The request of [`hello_rate`]: a small GET, as wrk sends.
const HELLO_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// `conns` keep-alive connections to the `hello` upstream (or a proxy of it), each in a
/// closed loop for `dur`: write a GET, read the whole 11-byte response (checked byte for
/// byte), repeat. Returns (requests/s, requests).
pub async fn hello_rate(addr: SocketAddr, conns: usize, dur: Duration) -> Res<(f64, u64)> {
    let mut socks = Vec::with_capacity(conns);
    for _ in 0..conns {
        socks.push(connect(addr).await?);
    }
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(conns);
    for mut s in socks {
        tasks.push(tokio::spawn(within(
            dur + Duration::from_secs(10),
            "keep-alive GET",
            async move {
                let mut resp = [0u8; HELLO_RESPONSE.len()];
                let mut count = 0u64;
                while t0.elapsed() < dur {
                    s.write_all(HELLO_REQUEST).await?;
                    s.read_exact(&mut resp).await?;
                    if resp[..] != *HELLO_RESPONSE {
                        return Err(std::io::Error::other(format!(
                            "unexpected response {:?}",
                            String::from_utf8_lossy(&resp)
                        )));
                    }
                    count += 1;
                }
                Ok::<_, std::io::Error>(count)
            },
        )));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.map_err(|e| e.to_string())??;
    }
    Ok((total as f64 / t0.elapsed().as_secs_f64(), total))
}

/// Streams `GET /1g` (`len` bytes) through `addr` on one connection, reading in 64 KiB
/// pieces, while `rss` is sampled every 50 ms; returns (seconds, peak of `rss()`).
pub async fn http_huge_download(
    addr: SocketAddr,
    len: u64,
    rss: impl Fn() -> u64,
) -> Res<(f64, u64)> {
    let mut s = connect(addr).await?;
    let t0 = Instant::now();
    let mut peak = rss();
    within(Duration::from_secs(120), "1 GiB download", async {
        s.write_all(b"GET /1g HTTP/1.1\r\nHost: bench\r\n\r\n")
            .await?;
        let mut buf = vec![0u8; BLOCK];
        let mut head = Vec::new();
        let mut got: u64 = 0;
        let mut in_body = false;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                r = s.read(&mut buf) => {
                    let n = r?;
                    if n == 0 {
                        return Err(std::io::Error::other(format!("EOF after {got} body bytes")));
                    }
                    if !in_body {
                        head.extend_from_slice(&buf[..n]);
                        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            if !head.starts_with(b"HTTP/1.1 200") {
                                return Err(std::io::Error::other("not a 200"));
                            }
                            got = (head.len() - i - 4) as u64;
                            in_body = true;
                        } else {
                            continue;
                        }
                    } else {
                        got += n as u64;
                    }
                    if got >= len {
                        return Ok(());
                    }
                }
                _ = tick.tick() => peak = peak.max(rss()),
            }
        }
    })
    .await?;
    Ok((t0.elapsed().as_secs_f64(), peak.max(rss())))
}

/// Sends a `len`-byte request body through `addr` (a POST, in 64 KiB writes) while `rss`
/// is sampled every 50 ms; the upstream answers how many bytes it read. Returns
/// (seconds, peak of `rss()`).
pub async fn http_huge_upload(
    addr: SocketAddr,
    len: u64,
    rss: impl Fn() -> u64,
) -> Res<(f64, u64)> {
    let s = connect(addr).await?;
    let (mut r, mut w) = s.into_split();
    let t0 = Instant::now();
    let mut peak = rss();
    let writer = tokio::spawn(async move {
        w.write_all(
            format!("POST /up HTTP/1.1\r\nHost: bench\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut left = len;
        while left > 0 {
            let n = (left as usize).min(BLOCK);
            w.write_all(&PAYLOAD[..n]).await?;
            left -= n as u64;
        }
        Ok::<_, std::io::Error>(w)
    });
    let reply = within(Duration::from_secs(120), "1 GiB upload", async {
        let mut reply = Vec::new();
        let mut buf = [0u8; 1024];
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let want = len.to_string();
        loop {
            tokio::select! {
                n = r.read(&mut buf) => {
                    let n = n?;
                    if n == 0 {
                        break;
                    }
                    reply.extend_from_slice(&buf[..n]);
                    if reply.ends_with(want.as_bytes()) {
                        break;
                    }
                }
                _ = tick.tick() => peak = peak.max(rss()),
            }
        }
        Ok::<_, std::io::Error>(reply)
    })
    .await?;
    let _w = writer
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if !reply.ends_with(len.to_string().as_bytes()) {
        return Err(format!(
            "upload: unexpected reply {:?}",
            String::from_utf8_lossy(&reply)
        ));
    }
    Ok((t0.elapsed().as_secs_f64(), peak.max(rss())))
}
