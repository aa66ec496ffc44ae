//! The embeddable library, used only through its public API, as the README shows: a test
//! that adds latency to a database connection.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use toxi::client::{NewProxy, NewToxic, ToxicUpdate};
use toxi::server::{Config, Server};

/// A stand-in database: answers every query line with `OK\n`.
async fn fake_database() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 || sock.write_all(b"OK\n").await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn query(db: &mut TcpStream) -> Duration {
    let start = Instant::now();
    db.write_all(b"SELECT 1;\n").await.unwrap();
    let mut reply = [0u8; 3];
    db.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"OK\n");
    start.elapsed()
}

#[tokio::test]
async fn a_slow_database_through_the_library() {
    let database = fake_database().await;
    let toxi = Server::start(Config::for_tests()).await.unwrap();
    let client = toxi.client();
    let proxy = client
        .create_proxy(&NewProxy::new("db", "127.0.0.1:0", &database))
        .await
        .unwrap();
    let mut conn = TcpStream::connect(&proxy.listen).await.unwrap();
    assert!(query(&mut conn).await < Duration::from_millis(200));

    client
        .add_toxic(
            "db",
            &NewToxic::new("latency")
                .name("slow_db")
                .attribute("latency", 300),
        )
        .await
        .unwrap();
    let took = query(&mut conn).await;
    assert!(took >= Duration::from_millis(295), "{took:?}");

    client
        .update_toxic("db", "slow_db", &ToxicUpdate::new().attribute("latency", 0))
        .await
        .unwrap();
    assert!(query(&mut conn).await < Duration::from_millis(200));
    client.remove_toxic("db", "slow_db").await.unwrap();
    toxi.shutdown().await;
}
