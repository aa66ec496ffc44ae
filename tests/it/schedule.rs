//! Scheduled toxics (beyond.md §1.1) on live connections, through the HTTP API. Lower
//! bounds are exact (a toxic never acts early); upper bounds leave room for a loaded
//! 2-core machine.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use toxi::model::Direction;
use toxi::server::Config;

use crate::support::*;

/// Polls the registry (no HTTP, so polls stay cheap on a loaded machine) until the toxic's
/// schedule state reads `want`; returns when that was first seen.
async fn until_state(
    server: &toxi::server::Server,
    proxy: &str,
    toxic: &str,
    want: bool,
) -> Instant {
    let deadline = Instant::now() + patience();
    loop {
        let t = server.registry().toxic(proxy, toxic).expect("toxic exists");
        if t.schedule.map(|s| s.active) == Some(want) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "never became active={want}: {t:?}"
        );
        tokio::time::sleep(ms(1)).await;
    }
}

/// Polls the toxic until `"active"` reads `want`; returns when that was first seen.
async fn until_active(api: std::net::SocketAddr, path: &str, want: bool) -> Instant {
    let deadline = Instant::now() + patience();
    loop {
        let (status, body) = http(api, "GET", path, "").await;
        assert_eq!(status, 200, "{body}");
        if json(&body)["active"] == serde_json::Value::Bool(want) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "never became active={want}: {body}"
        );
        tokio::time::sleep(ms(2)).await;
    }
}

#[tokio::test]
async fn delayed_start_then_self_removal() {
    let server = server().await;
    let api = server.api_addr();
    let p = proxy(&server, "later", echo_upstream().await).await;
    let mut c = connect(&p).await;
    round_trip(&mut c, b"warm").await;
    let t0 = Instant::now();
    let (status, body) = http(
        api,
        "POST",
        "/proxies/later/toxics",
        r#"{"type":"latency","attributes":{"latency":200},"schedule":{"start_after":"400ms","duration":800}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        r#"{"attributes":{"latency":200,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1,"schedule":{"start_after":400,"duration":800},"active":false}"#
    );
    // Before start_after the toxic exists but passes data untouched.
    let rtt = round_trip(&mut c, b"early").await;
    assert!(rtt < ms(150), "{rtt:?}");
    let on = until_active(api, "/proxies/later/toxics/latency_downstream", true).await;
    let at = on - t0;
    assert!(at >= ms(400) && at < ms(400 + 250), "activated at {at:?}");
    let rtt = round_trip(&mut c, b"slow").await;
    assert!(rtt >= ms(195), "active: {rtt:?}");
    // Then it removes itself, as DELETE would.
    eventually("the toxic removes itself", || async {
        let (status, body) = http(api, "GET", "/proxies/later/toxics/latency_downstream", "").await;
        if status == 404 {
            Ok(())
        } else {
            Err(body)
        }
    })
    .await;
    let gone = t0.elapsed();
    assert!(gone >= ms(1200), "removed early, at {gone:?}");
    let rtt = round_trip(&mut c, b"after").await;
    assert!(rtt < ms(150), "{rtt:?}");
    let (_, body) = http(api, "GET", "/proxies/later", "").await;
    assert_eq!(json(&body)["toxics"], serde_json::json!([]));
}

/// A removed latency toxic releases what it holds at once: data read during the active
/// phase comes out, in order, when the toxic ends.
#[tokio::test]
async fn expiry_releases_held_data_in_order() {
    let server = server().await;
    let api = server.api_addr();
    let p = proxy(&server, "held", echo_upstream().await).await;
    let (status, body) = http(
        api,
        "POST",
        "/proxies/held/toxics",
        r#"{"type":"latency","attributes":{"latency":60000},"schedule":{"duration":"300ms"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut c = connect(&p).await;
    let t0 = Instant::now();
    let msg = pattern(100_000, 9);
    c.write_all(&msg).await.unwrap();
    assert_eq!(read_n(&mut c, msg.len()).await, msg);
    let took = t0.elapsed();
    assert!(took >= ms(290) && took < ms(3000), "{took:?}");
}

/// An expired `timeout` toxic closes its connections, as removing one does.
#[tokio::test]
async fn expiry_of_a_timeout_closes_its_connections() {
    let server = server().await;
    let api = server.api_addr();
    let p = proxy(&server, "cut", echo_upstream().await).await;
    let mut c = connect(&p).await;
    round_trip(&mut c, b"warm").await;
    let t0 = Instant::now();
    let (status, body) = http(
        api,
        "POST",
        "/proxies/cut/toxics",
        r#"{"type":"timeout","stream":"upstream","attributes":{"timeout":0},"schedule":{"duration":300}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    c.write_all(b"dropped").await.unwrap();
    expect_closed(&mut c).await;
    let at = t0.elapsed();
    assert!(at >= ms(300) && at < ms(300 + 500), "closed at {at:?}");
}

/// A flapping toxic under a 64 MiB stream: every byte arrives once and in order, and the
/// toxic really flipped many times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_keeps_every_byte_of_a_64_mib_stream() {
    const TOTAL: usize = 64 * 1024 * 1024;
    let server = server().await;
    let api = server.api_addr();
    let p = proxy(&server, "flap", echo_upstream().await).await;
    for (stream, body) in [
        (
            "upstream",
            r#"{"type":"latency","stream":"upstream","attributes":{"latency":5,"jitter":3},"schedule":{"duration":"40ms","every":"90ms"}}"#,
        ),
        (
            "downstream",
            r#"{"type":"slicer","stream":"downstream","attributes":{"average_size":3000,"size_variation":1000,"delay":10},"schedule":{"start_after":"15ms","duration":30,"every":70}}"#,
        ),
    ] {
        let (status, reply) = http(api, "POST", "/proxies/flap/toxics", body).await;
        assert_eq!(status, 200, "{stream}: {reply}");
    }
    let c = connect(&p).await;
    let (mut r, w) = c.into_split();
    let writer = spawn_pattern_writer(w, TOTAL >> 20);
    let start = Instant::now();
    let (received, digest) = sha256_to_eof(&mut r, Duration::from_secs(300)).await;
    let elapsed = start.elapsed();
    assert_eq!(received, TOTAL);
    assert_eq!(digest, writer.await.unwrap().to_vec());
    let flips = activations(
        &server,
        "flap",
        "latency_upstream",
        "latency",
        Direction::Upstream,
    );
    let expected = elapsed.as_millis() as u64 / 90;
    assert!(
        flips >= 2 && flips + 2 >= expected / 2,
        "{flips} activations in {elapsed:?}"
    );
}

/// Flips come on one timer: each activation is seen at its due time, period after period
/// (never early: the schedule timer has no early-wake slack).
#[tokio::test]
async fn flapping_follows_the_period() {
    let server = server().await;
    let api = server.api_addr();
    proxy(&server, "period", echo_upstream().await).await;
    let t0 = Instant::now();
    let (status, body) = http(
        api,
        "POST",
        "/proxies/period/toxics",
        r#"{"name":"f","type":"noop","schedule":{"start_after":100,"duration":100,"every":300}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for k in 0..3u64 {
        let on = until_state(&server, "period", "f", true).await - t0;
        let due = ms(100 + 300 * k);
        assert!(on >= due && on < due + ms(90), "period {k}: on at {on:?}");
        let off = until_state(&server, "period", "f", false).await - t0;
        let due = ms(200 + 300 * k);
        assert!(
            off >= due && off < due + ms(90),
            "period {k}: off at {off:?}"
        );
    }
}

#[tokio::test]
async fn set_replace_and_clear_a_schedule() {
    let server = server().await;
    let api = server.api_addr();
    proxy(&server, "edit", echo_upstream().await).await;
    let plain = r#"{"attributes":{"latency":10,"jitter":0},"name":"l","type":"latency","stream":"downstream","toxicity":1}"#;
    let (status, body) = http(
        api,
        "POST",
        "/proxies/edit/toxics",
        r#"{"name":"l","type":"latency","attributes":{"latency":10},"schedule":null}"#,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, plain),
        "unscheduled JSON is unchanged"
    );
    let (status, body) = http(
        api,
        "PATCH",
        "/proxies/edit/toxics/l",
        r#"{"schedule":{"start_after":"1h"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with(r#""toxicity":1,"schedule":{"start_after":3600000},"active":false}"#),
        "{body}"
    );
    // An attribute update keeps the schedule.
    let (_, body) = http(
        api,
        "PATCH",
        "/proxies/edit/toxics/l",
        r#"{"attributes":{"latency":20}}"#,
    )
    .await;
    assert!(
        body.contains(r#""schedule":{"start_after":3600000},"active":false"#),
        "{body}"
    );
    let (_, body) = http(
        api,
        "PATCH",
        "/proxies/edit/toxics/l",
        r#"{"schedule":null}"#,
    )
    .await;
    assert_eq!(body, plain.replace("10", "20"));
    let (_, body) = http(api, "GET", "/proxies/edit/toxics", "").await;
    assert_eq!(body, format!("[{}]", plain.replace("10", "20")));
}

#[tokio::test]
async fn bad_schedules_are_400s_naming_the_field() {
    let server = server().await;
    let api = server.api_addr();
    proxy(&server, "bad", echo_upstream().await).await;
    let cases = [
        (r#"{"start_after":-5}"#, "schedule.start_after"),
        (r#"{"start_after":"-1s"}"#, "schedule.start_after"),
        (r#"{"duration":"soon"}"#, "schedule.duration"),
        (r#"{"duration":1.5}"#, "schedule.duration"),
        (r#"{"duration":"3000000h"}"#, "schedule.duration"),
        (r#"{"duration":99999999999999999999}"#, "schedule.duration"),
        (r#"{"every":"1s"}"#, "schedule.every"),
        (r#"{"duration":"1s","every":"1s"}"#, "schedule.duration"),
        (r#"{"every":true,"duration":1}"#, "schedule.every"),
        (r#"5"#, "schedule"),
    ];
    for (schedule, field) in cases {
        let body = format!(r#"{{"type":"latency","schedule":{schedule}}}"#);
        let (status, reply) = http(api, "POST", "/proxies/bad/toxics", &body).await;
        assert_eq!(status, 400, "{schedule}: {reply}");
        let v = json(&reply);
        assert_eq!(v["status"], 400);
        let msg = v["error"].as_str().unwrap();
        assert!(msg.starts_with(field), "{schedule}: {msg}");
    }
    let (_, body) = http(api, "GET", "/proxies/bad/toxics", "").await;
    assert_eq!(body, "[]", "nothing was added");
    let (status, _) = http(
        api,
        "POST",
        "/proxies/bad/toxics",
        r#"{"name":"ok","type":"noop"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (status, reply) = http(
        api,
        "PATCH",
        "/proxies/bad/toxics/ok",
        r#"{"attributes":{},"schedule":{"every":"2s"}}"#,
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("schedule.every"), "{reply}");
    let (_, body) = http(api, "GET", "/proxies/bad/toxics/ok", "").await;
    assert!(!body.contains("schedule"), "unchanged: {body}");
}

#[tokio::test]
async fn max_toxic_duration_caps_api_toxics() {
    let server = server_with(Config {
        max_toxic_duration: Some(ms(400)),
        ..Config::for_tests()
    })
    .await;
    let api = server.api_addr();
    let p = proxy(&server, "capped", echo_upstream().await).await;
    let t0 = Instant::now();
    let (status, body) = http(
        api,
        "POST",
        "/proxies/capped/toxics",
        r#"{"type":"timeout","attributes":{"timeout":0}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with(r#""schedule":{"start_after":0,"duration":400},"active":true}"#),
        "{body}"
    );
    let (status, body) = http(
        api,
        "POST",
        "/proxies/capped/toxics",
        r#"{"type":"latency","schedule":{"duration":"1s"}}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("schedule.duration"), "{body}");
    let (status, body) = http(
        api,
        "PATCH",
        "/proxies/capped/toxics/timeout_downstream",
        r#"{"schedule":null}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""duration":400"#),
        "clearing keeps the cap: {body}"
    );
    let mut c = connect(&p).await;
    expect_closed(&mut c).await;
    assert!(t0.elapsed() >= ms(400), "{:?}", t0.elapsed());
    let (_, body) = http(api, "GET", "/proxies/capped/toxics", "").await;
    assert_eq!(body, "[]");
}

/// `limit_time` closes each connection `duration` ms after the toxic was on it: from the
/// moment it was added for a connection already open, from the open for a later one.
#[tokio::test]
async fn limit_time_closes_connections_on_time() {
    let server = server().await;
    let api = server.api_addr();
    let p = proxy(&server, "lt", echo_upstream().await).await;
    let mut old = connect(&p).await;
    round_trip(&mut old, b"warm").await;
    let added = Instant::now();
    let (status, body) = http(
        api,
        "POST",
        "/proxies/lt/toxics",
        r#"{"type":"limit_time","attributes":{"duration":400}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        r#"{"attributes":{"duration":400},"name":"limit_time_downstream","type":"limit_time","stream":"downstream","toxicity":1}"#
    );
    tokio::time::sleep(ms(200)).await;
    let opened = Instant::now();
    let mut new = connect(&p).await;
    // Data passes normally meanwhile.
    let rtt = round_trip(&mut new, b"ping").await;
    assert!(rtt < ms(150), "{rtt:?}");
    expect_closed(&mut old).await;
    let at = added.elapsed();
    // The link's timer is centred on a deadline: it may fire up to a millisecond early.
    assert!(
        at >= ms(398) && at < ms(400 + 200),
        "open connection closed at {at:?}"
    );
    expect_closed(&mut new).await;
    let at = opened.elapsed();
    assert!(
        at >= ms(398) && at < ms(400 + 200),
        "new connection closed at {at:?}"
    );
}

/// The server flag, as the binary parses it (Go duration syntax).
#[test]
fn max_toxic_duration_flag() {
    use crate::process::{server_command, spawn};
    let mut command = server_command();
    command.arg("-max-toxic-duration=2m30s");
    let proc = spawn(command);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let up = echo_upstream().await;
        create_proxy_http(proc.api, "flag", up).await;
        let (status, body) = http(
            proc.api,
            "POST",
            "/proxies/flag/toxics",
            r#"{"type":"noop"}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.ends_with(r#""schedule":{"start_after":0,"duration":150000},"active":true}"#),
            "{body}"
        );
    });
}
