//! `toxi::client` against an in-process toxi server: every route, and each error kind.

use serde_json::json;
use toxi::client::{
    Client, ClientError, NewProxy, NewToxic, ProxyUpdate, ToxicUpdate, TransportKind,
};
use toxi::server::{Config, Server};

async fn start(config: Config) -> (Server, Client) {
    let server = Server::start(config).await.expect("start the toxi server");
    let client = Client::new(&server.url());
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route() {
    let (server, client) = start(Config::for_tests()).await;

    assert_eq!(client.version().await.unwrap(), toxi::VERSION);
    assert!(client.proxies().await.unwrap().is_empty());

    let created = client
        .create_proxy(&NewProxy::new("web", "127.0.0.1:0", "x:1"))
        .await
        .unwrap();
    assert_eq!(created.name, "web");
    assert!(created.enabled);
    assert!(created.listen.starts_with("127.0.0.1:"));
    assert_ne!(created.listen, "127.0.0.1:0");

    // Names that need percent-encoding stay one path segment.
    let odd = client
        .create_proxy(&NewProxy::new("a b?c", "127.0.0.1:0", "x:2").enabled(false))
        .await
        .unwrap();
    assert!(!odd.enabled);
    assert_eq!(client.proxy("a b?c").await.unwrap().upstream, "x:2");

    let proxies = client.proxies().await.unwrap();
    assert_eq!(proxies.keys().collect::<Vec<_>>(), ["a b?c", "web"]);

    let updated = client
        .update_proxy(
            "web",
            &ProxyUpdate {
                upstream: Some("x:3".into()),
                ..ProxyUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.upstream, "x:3");
    let mut whole = client.proxy("web").await.unwrap();
    whole.enabled = false;
    let saved = client.save_proxy(&whole).await.unwrap();
    assert!(!saved.enabled);

    let toxic = client
        .add_toxic(
            "web",
            &NewToxic::new("latency")
                .upstream()
                .attribute("latency", 250)
                .toxicity(0.5),
        )
        .await
        .unwrap();
    assert_eq!(
        (toxic.name.as_str(), toxic.stream.as_str(), toxic.toxicity),
        ("latency_upstream", "upstream", 0.5)
    );
    assert_eq!(toxic.kind.int("latency"), 250);
    assert_eq!(toxic.kind.int("jitter"), 0);
    client
        .add_toxic("web", &NewToxic::new("noop").name("n o"))
        .await
        .unwrap();
    let toxics = client.toxics("web").await.unwrap();
    assert_eq!(
        toxics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["latency_upstream", "n o"]
    );
    assert_eq!(
        client.toxic("web", "n o").await.unwrap().kind.type_name(),
        "noop"
    );

    let toxic = client
        .update_toxic(
            "web",
            "latency_upstream",
            &ToxicUpdate::new().attribute("jitter", 10),
        )
        .await
        .unwrap();
    assert_eq!(toxic.kind.int("latency"), 250);
    assert_eq!(toxic.kind.int("jitter"), 10);
    assert_eq!(toxic.toxicity, 0.5, "toxicity kept when not sent");
    client.remove_toxic("web", "n o").await.unwrap();

    let populated = client
        .populate(&[
            NewProxy::new("p1", "127.0.0.1:0", "y:1"),
            NewProxy::new("p2", "127.0.0.1:0", "y:2"),
        ])
        .await
        .unwrap();
    assert_eq!(populated.len(), 2);
    assert_eq!(client.populate(&[]).await.unwrap(), vec![]);

    client.reset().await.unwrap();
    let web = client.proxy("web").await.unwrap();
    assert!(web.enabled, "reset re-enables");
    assert!(web.toxics.is_empty(), "reset removes toxics");

    for name in ["web", "a b?c", "p1", "p2"] {
        client.delete_proxy(name).await.unwrap();
    }
    assert!(client.proxies().await.unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors() {
    let (server, client) = start(Config::for_tests()).await;

    let err = client.proxy("nope").await.unwrap_err();
    assert_eq!(err.to_string(), "HTTP 404: proxy not found");
    assert!(matches!(
        err,
        ClientError::Api {
            http_status: 404,
            status: 404,
            ..
        }
    ));
    assert!(!err.is_unreachable());

    client
        .create_proxy(&NewProxy::new("p", "127.0.0.1:0", "x:1"))
        .await
        .unwrap();
    let err = client
        .create_proxy(&NewProxy::new("p", "127.0.0.1:0", "x:1"))
        .await
        .unwrap_err();
    assert!(err.is_status(409));
    assert_eq!(err.api_message(), Some("proxy already exists"));

    let err = client
        .add_toxic(
            "p",
            &NewToxic::new("latency").attribute("latency", json!("abc")),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "HTTP 400: bad request body: json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type int64"
    );

    // The router's plain-text 404 reads as Go's decoder error, as the Go client reports it.
    let err = client.remove_toxic("p", "").await.unwrap_err();
    assert!(matches!(
        err,
        ClientError::UnexpectedBody {
            http_status: 404,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "json: cannot unmarshal number into Go value of type toxiproxy.ApiError"
    );

    // Browsers are refused by the server; the text body gives Go's decoder message.
    let browser = Client::new(&server.url()).with_user_agent("Mozilla/5.0");
    let err = browser.proxies().await.unwrap_err();
    assert_eq!(err.http_status(), Some(403));
    assert_eq!(
        err.to_string(),
        "invalid character 'U' looking for beginning of value"
    );

    let addr = server.api_addr();
    server.shutdown().await;
    let err = client.proxies().await.unwrap_err();
    assert_eq!(err.transport_kind(), Some(TransportKind::Connect));
    assert_eq!(
        err.to_string(),
        format!("fail to request: Get \"http://{addr}/proxies\": dial tcp {addr}: connect: connection refused")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token() {
    let (server, client) = start(Config {
        api_token: Some("s3cret".into()),
        ..Config::for_tests()
    })
    .await;
    let client = client.with_token(None);
    let err = client.proxies().await.unwrap_err();
    assert_eq!(err.to_string(), "HTTP 401: unauthorized");
    let client = client.with_token(Some("s3cret".into()));
    assert!(client.proxies().await.unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn timeout() {
    // A listener that accepts but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let client = Client::new(&addr.to_string()).with_timeout(std::time::Duration::from_millis(200));
    let err = client.proxies().await.unwrap_err();
    assert_eq!(err.transport_kind(), Some(TransportKind::Timeout));
    assert!(err
        .to_string()
        .ends_with("context deadline exceeded (Client.Timeout exceeded while awaiting headers)"));
    hold.abort();
}
