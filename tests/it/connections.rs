//! `GET /proxies/{proxy}/connections` and `DELETE …/connections/{id}` (beyond.md §3.1),
//! checked against the test's own sockets.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use toxi::client::NewToxic;

use crate::support::*;

#[tokio::test]
async fn lists_open_connections_with_live_byte_counts() {
    let server = server().await;
    let p = proxy(&server, "web", echo_upstream().await).await;
    let client = server.client();
    let mut a = connect(&p).await;
    let mut b = connect(&p).await;
    a.write_all(&[1; 1000]).await.unwrap();
    read_n(&mut a, 1000).await;
    b.write_all(&[2; 300]).await.unwrap();
    read_n(&mut b, 300).await;

    let conns = client.connections("web").await.unwrap();
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(conns[0].client, a.local_addr().unwrap().to_string());
    assert_eq!(conns[1].client, b.local_addr().unwrap().to_string());
    assert!(conns[0].id < conns[1].id);
    assert_eq!(
        (conns[0].bytes.upstream, conns[0].bytes.downstream),
        (1000, 1000)
    );
    assert_eq!(
        (conns[1].bytes.upstream, conns[1].bytes.downstream),
        (300, 300)
    );
    assert!(conns[0].opened_at.ends_with('Z') && conns[0].opened_at.len() == 24);

    // Byte counts are live: more traffic on an open connection shows at once.
    a.write_all(&[3; 500]).await.unwrap();
    read_n(&mut a, 500).await;
    let conns = client.connections("web").await.unwrap();
    assert_eq!(conns[0].bytes.upstream, 1500);

    // A closed connection leaves the list.
    drop(a);
    within("closed connection leaves the list", async {
        while client.connections("web").await.unwrap().len() != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let err = client.connections("nope").await.unwrap_err();
    assert_eq!(err.http_status(), Some(404));
}

/// Each toxic's reported roll is the one the link applies: with `limit_data` at 50 %
/// toxicity, exactly the connections reported `true` are cut.
#[tokio::test]
async fn reported_rolls_match_what_the_link_applies() {
    let server = server_with(toxi::server::Config {
        seed: Some(7),
        ..toxi::server::Config::for_tests()
    })
    .await;
    let p = proxy(&server, "web", echo_upstream().await).await;
    let client = server.client();
    client
        .add_toxic(
            "web",
            &NewToxic::new("limit_data")
                .name("cut")
                .upstream()
                .toxicity(0.5)
                .attribute("bytes", 4),
        )
        .await
        .unwrap();
    let mut socks = Vec::new();
    for _ in 0..16 {
        let s = connect(&p).await;
        socks.push(s);
    }
    let conns = within("all connections listed", async {
        loop {
            let c = client.connections("web").await.unwrap();
            if c.len() == socks.len() {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let mut seen = [false; 2];
    for sock in socks.iter_mut() {
        // Connections on different workers may be listed in either order.
        let me = sock.local_addr().unwrap().to_string();
        let conn = conns.iter().find(|c| c.client == me).expect("listed");
        let applied = conn.toxics["cut"];
        seen[applied as usize] = true;
        sock.write_all(b"0123456789").await.unwrap();
        let (got, _) = read_to_end_or_echo(sock, 10).await;
        if applied {
            assert!(
                got.len() < 10,
                "connection {} should be cut: {got:?}",
                conn.id
            );
        } else {
            assert_eq!(got, b"0123456789", "connection {}", conn.id);
        }
    }
    assert_eq!(seen, [true, true], "both outcomes among 16 connections");
}

/// Reads until `want` bytes arrived or the stream ended.
async fn read_to_end_or_echo(sock: &mut tokio::net::TcpStream, want: usize) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    within("echo or close", async {
        while got.len() < want {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return (got, true),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        (got, false)
    })
    .await
}

#[tokio::test]
async fn kill_closes_with_fin_or_rst() {
    let server = server().await;
    let p = proxy(&server, "web", echo_upstream().await).await;
    let client = server.client();
    let mut fin = connect(&p).await;
    let mut rst = connect(&p).await;
    for s in [&mut fin, &mut rst] {
        s.write_all(b"hi").await.unwrap();
        read_n(s, 2).await;
    }
    let conns = client.connections("web").await.unwrap();
    let id = |s: &tokio::net::TcpStream| {
        let me = s.local_addr().unwrap().to_string();
        conns.iter().find(|c| c.client == me).unwrap().id
    };
    let (fin_id, rst_id) = (id(&fin), id(&rst));

    client.kill("web", fin_id, false).await.unwrap();
    let mut buf = [0u8; 16];
    let n = within("FIN", fin.read(&mut buf)).await;
    assert_eq!(n.unwrap(), 0, "a clean EOF");

    client.kill("web", rst_id, true).await.unwrap();
    let r = within("RST", rst.read(&mut buf)).await;
    assert_eq!(
        r.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );

    let err = client.kill("web", fin_id, false).await.unwrap_err();
    assert_eq!(err.http_status(), Some(404));
    assert_eq!(err.api_message(), Some("connection not found"));
    let (status, body) = http(
        server.api_addr(),
        "DELETE",
        "/proxies/web/connections/x",
        "",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (404, "{\"error\":\"connection not found\",\"status\":404}\n")
    );
    let (status, _) = http(
        server.api_addr(),
        "DELETE",
        "/proxies/nope/connections/1",
        "",
    )
    .await;
    assert_eq!(status, 404);
}
