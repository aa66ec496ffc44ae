//! Hostile input on every route and every toxic type: each case gets a clear 4xx in
//! Toxiproxy's error shape (a 5xx only for a real server-side failure such as a bind
//! error), nothing panics or hangs, and the server keeps serving afterwards.

use std::net::SocketAddr;

use crate::support::*;

/// The API still answers, and quickly.
async fn healthy(api: SocketAddr) {
    let (status, body) = http(api, "GET", "/version", "").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(api, "GET", "/proxies", "").await;
    assert_eq!(status, 200);
}

/// Asserts an error answer in Toxiproxy's shape with the given status.
fn assert_error(status: u16, body: &str, want: u16, case: &str) {
    assert_eq!(status, want, "{case}: {body}");
    let v: serde_json::Value = serde_json::from_str(body.trim_end())
        .unwrap_or_else(|_| panic!("{case}: not JSON: {body:?}"));
    assert_eq!(v["status"], want, "{case}");
    assert!(
        v["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{case}: {body}"
    );
}

async fn setup() -> (toxi::server::Server, SocketAddr) {
    let server = server().await;
    let api = server.api_addr();
    let up = echo_upstream().await;
    let body = format!(r#"{{"name":"p","listen":"127.0.0.1:0","upstream":"{up}"}}"#);
    assert_eq!(http(api, "POST", "/proxies", &body).await.0, 201);
    (server, api)
}

fn deep(n: usize, open: &str, close: &str) -> String {
    let mut s = String::with_capacity(n * (open.len() + close.len()));
    for _ in 0..n {
        s.push_str(open);
    }
    for _ in 0..n {
        s.push_str(close);
    }
    s
}

#[tokio::test]
async fn malformed_bodies_on_every_body_route() {
    let (_server, api) = setup().await;
    let routes = [
        ("POST", "/proxies"),
        ("POST", "/populate"),
        ("POST", "/proxies/p"),
        ("PATCH", "/proxies/p"),
        ("POST", "/proxies/p/toxics"),
    ];
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("truncated", b"{\"name\":".to_vec()),
        ("garbage", b"\x00\x01\x02garbage".to_vec()),
        ("invalid utf-8", b"{\"name\":\"\xff\xfe\",\"upstream\":\"\xc3\x28\"}".to_vec()),
        ("deep arrays", deep(100_000, "[", "]").into_bytes()),
        ("deep objects", deep(100_000, "{\"a\":", "}").into_bytes()),
        ("wrong types", br#"{"name":1,"listen":[],"upstream":{},"enabled":"yes","type":5,"stream":false,"toxicity":"x","attributes":7}"#.to_vec()),
        ("a number", b"12345678901234567890123456789".to_vec()),
        ("a string", b"\"just a string\"".to_vec()),
    ];
    for (method, path) in routes {
        for (case, body) in &bodies {
            let (status, _, reply) = http_raw(api, method, path, &[], body).await;
            let reply = String::from_utf8_lossy(&reply).to_string();
            let case = format!("{method} {path} with {case}");
            // /populate answers a JSON body with "proxies" too; the shape check covers both.
            assert_error(status, &reply, 400, &case);
        }
        healthy(api).await;
    }
}

#[tokio::test]
async fn number_limits_in_toxic_attributes() {
    let (_server, api) = setup().await;
    let max = i64::MAX.to_string();
    let min = i64::MIN.to_string();
    let accepted = [
        format!(
            r#"{{"name":"a1","type":"latency","attributes":{{"latency":{max},"jitter":{max}}}}}"#
        ),
        format!(
            r#"{{"name":"a2","type":"latency","attributes":{{"latency":{min},"jitter":{min}}}}}"#
        ),
        format!(r#"{{"name":"a3","type":"bandwidth","attributes":{{"rate":{max}}}}}"#),
        format!(r#"{{"name":"a4","type":"timeout","attributes":{{"timeout":{min}}}}}"#),
        format!(
            r#"{{"name":"a5","type":"slicer","attributes":{{"average_size":{max},"size_variation":{max},"delay":{max}}}}}"#
        ),
        format!(r#"{{"name":"a6","type":"limit_data","attributes":{{"bytes":{min}}}}}"#),
        format!(r#"{{"name":"a7","type":"reset_peer","attributes":{{"timeout":{max}}}}}"#),
        format!(r#"{{"name":"a8","type":"slow_close","attributes":{{"delay":{max}}}}}"#),
        r#"{"name":"a9","type":"noop","toxicity":-1e30}"#.to_string(),
        r#"{"name":"a10","type":"noop","toxicity":3.4e38}"#.to_string(),
    ];
    for body in &accepted {
        let (status, reply) = http(api, "POST", "/proxies/p/toxics", body).await;
        assert_eq!(status, 200, "{body}: {reply}");
    }
    let rejected = [
        r#"{"type":"latency","attributes":{"latency":9223372036854775808}}"#,
        r#"{"type":"latency","attributes":{"latency":-9223372036854775809}}"#,
        r#"{"type":"latency","attributes":{"latency":1e400}}"#,
        r#"{"type":"latency","attributes":{"latency":1.5}}"#,
        r#"{"type":"latency","attributes":{"latency":1e3}}"#,
        r#"{"type":"latency","attributes":{"latency":"100"}}"#,
        r#"{"type":"latency","toxicity":1e39}"#,
        r#"{"type":"latency","toxicity":"1"}"#,
        r#"{"type":"bandwidth","attributes":{"rate":-1}}"#,
        r#"{"type":"slicer"}"#,
        r#"{"type":"slicer","attributes":{"average_size":0}}"#,
        r#"{"type":"slicer","attributes":{"average_size":-5}}"#,
        r#"{"type":"slicer","attributes":{"average_size":10,"size_variation":-1}}"#,
        r#"{"type":"slicer","attributes":{"average_size":10,"size_variation":11}}"#,
        r#"{"type":"nope"}"#,
        r#"{"type":"latency","stream":""}"#,
        r#"{"type":"latency","stream":"sideways"}"#,
    ];
    for body in rejected {
        let (status, reply) = http(api, "POST", "/proxies/p/toxics", body).await;
        assert_error(status, &reply, 400, body);
        healthy(api).await;
    }
    // The same limits on update.
    let (status, reply) = http(
        api,
        "PATCH",
        "/proxies/p/toxics/a1",
        r#"{"attributes":{"latency":1e400}}"#,
    )
    .await;
    assert_error(status, &reply, 400, "update overflow");
    let (status, reply) = http(
        api,
        "PATCH",
        "/proxies/p/toxics/a5",
        r#"{"attributes":{"average_size":0}}"#,
    )
    .await;
    assert_error(status, &reply, 400, "update slicer to 0");
    let (status, reply) = http(
        api,
        "PATCH",
        "/proxies/p/toxics/a3",
        r#"{"attributes":{"rate":-1}}"#,
    )
    .await;
    assert_error(status, &reply, 400, "update negative rate");
    healthy(api).await;
}

#[tokio::test]
async fn odd_names_never_break_routing() {
    let (_server, api) = setup().await;
    let long = "n".repeat(64 * 1024);
    let names = [
        "a/b",
        "..",
        "../etc",
        "ünïcødé-名前-🦀",
        "sp ace",
        "%2F",
        "",
        long.as_str(),
    ];
    for name in names {
        let body = serde_json::json!({"name": name, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "enabled": false}).to_string();
        let (status, reply) = http(api, "POST", "/proxies", &body).await;
        if name.is_empty() {
            assert_error(status, &reply, 400, "empty name");
        } else {
            assert_eq!(status, 201, "{name}: {reply}");
        }
        let body = serde_json::json!({"name": name, "type": "noop"}).to_string();
        let (status, reply) = http(api, "POST", "/proxies/p/toxics", &body).await;
        if name.is_empty() {
            assert_eq!(status, 200, "empty toxic name takes the default: {reply}");
        } else {
            assert_eq!(status, 200, "{name}: {reply}");
        }
        healthy(api).await;
    }
    // Percent-encoded names address their proxy; a raw `/` does not (as in Toxiproxy).
    let (status, _) = http(
        api,
        "GET",
        "/proxies/%C3%BCn%C3%AFc%C3%B8d%C3%A9-%E5%90%8D%E5%89%8D-%F0%9F%A6%80",
        "",
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = http(api, "GET", "/proxies/a/b", "").await;
    assert_eq!(status, 404);
    // A 64 KiB name can be created, but a request line that long is refused by the HTTP
    // layer (URI too long) rather than routed.
    let (status, _) = http(api, "GET", &format!("/proxies/{long}"), "").await;
    assert_eq!(status, 414);
    let (status, _) = http(api, "GET", &format!("/proxies/{}", &long[..60_000]), "").await;
    assert_eq!(status, 404);
    healthy(api).await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let (_server, api) = setup().await;
    let big = vec![b' '; 1024 * 1024 + 1];
    for (method, path) in [
        ("POST", "/proxies"),
        ("POST", "/populate"),
        ("PATCH", "/proxies/p"),
        ("POST", "/proxies/p/toxics"),
    ] {
        let (status, _, reply) = http_raw(api, method, path, &[], &big).await;
        let reply = String::from_utf8_lossy(&reply).to_string();
        assert_error(status, &reply, 413, path);
    }
    healthy(api).await;
}

#[tokio::test]
async fn a_taken_port_is_a_500_and_nothing_leaks() {
    let (_server, api) = setup().await;
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap();
    let body = format!(r#"{{"name":"clash","listen":"{taken}","upstream":"127.0.0.1:1"}}"#);
    let (status, reply) = http(api, "POST", "/proxies", &body).await;
    assert_error(status, &reply, 500, "bind conflict");
    assert!(reply.contains("address already in use"));
    let (status, _) = http(api, "GET", "/proxies/clash", "").await;
    assert_eq!(status, 404, "a failed create adds nothing");
    drop(holder);
    let (status, _) = http(api, "POST", "/proxies", &body).await;
    assert_eq!(status, 201, "the port works once free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_proxies() {
    let (_server, api) = setup().await;
    let entries: Vec<serde_json::Value> = (0..10_000)
        .map(|i| serde_json::json!({"name": format!("bulk{i:05}"), "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "enabled": false}))
        .collect();
    let (status, reply) = http(
        api,
        "POST",
        "/populate",
        &serde_json::Value::Array(entries).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{}", &reply[..reply.len().min(200)]);
    let (status, body) = http(api, "GET", "/proxies", "").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 10_001);
    for i in (0..10_000).step_by(997) {
        let (status, _) = http(api, "DELETE", &format!("/proxies/bulk{i:05}"), "").await;
        assert_eq!(status, 204);
    }
    healthy(api).await;
}

/// Slow clients that never finish their headers do not starve `GET /proxies`.
#[tokio::test]
async fn slow_loris_does_not_starve_the_api() {
    use tokio::io::AsyncWriteExt;
    let (_server, api) = setup().await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
        s.write_all(b"GET /proxies HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        idle.push(s);
    }
    let start = std::time::Instant::now();
    healthy(api).await;
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}
