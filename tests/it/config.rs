//! Toxics in `/populate` and `-config`, reconcile, and `-config-watch` reloads
//! (beyond.md §1.3, §1.4), on real connections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use toxi::server::{Config, Server};

use crate::support::*;

/// A fresh empty directory under the system's temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("toxi-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A directory laid out as Kubernetes mounts a ConfigMap: `config.json` -> `..data/config.json`,
/// `..data` -> `..<version>`. Each [`ConfigMap::publish`] writes a new version directory and
/// swaps the `..data` symlink atomically, as the kubelet does.
struct ConfigMap {
    dir: PathBuf,
    version: u32,
}

impl ConfigMap {
    fn new(tag: &str, first: &str) -> ConfigMap {
        let mut map = ConfigMap {
            dir: temp_dir(tag),
            version: 0,
        };
        map.publish(first);
        std::os::unix::fs::symlink("..data/config.json", map.path()).unwrap();
        map
    }

    fn path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn publish(&mut self, content: &str) {
        self.version += 1;
        let name = format!("..2026_12_02_{:04}", self.version);
        std::fs::create_dir(self.dir.join(&name)).unwrap();
        std::fs::write(self.dir.join(&name).join("config.json"), content).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

impl Drop for ConfigMap {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn toxics_of(api: SocketAddr, proxy: &str) -> serde_json::Value {
    let (status, body) = http(api, "GET", &format!("/proxies/{proxy}/toxics"), "").await;
    assert_eq!(status, 200, "{body}");
    json(&body)
}

/// Writes `msg` and reads back what the echo returns before the connection ends.
async fn send(c: &mut tokio::net::TcpStream, msg: &[u8]) {
    c.write_all(msg).await.unwrap();
}

#[tokio::test]
async fn populate_reconciles_and_keeps_a_live_limit_data_counter() {
    let server = server().await;
    let api = server.api_addr();
    let up = echo_upstream().await;
    let body = |listen: &str, latency: u32, extra: &str| {
        format!(
            r#"[{{"name":"db","listen":"{listen}","upstream":"{up}","toxics":[
                {{"name":"cap","type":"limit_data","attributes":{{"bytes":1000}}}},
                {{"name":"slow","type":"latency","stream":"upstream","attributes":{{"latency":{latency}}}}}{extra}
            ]}}]"#
        )
    };
    let (status, reply) = http(api, "POST", "/populate", &body("127.0.0.1:0", 10, "")).await;
    assert_eq!(status, 201, "{reply}");
    let v = json(&reply);
    assert_eq!(
        v["proxies"][0]["toxics"].as_array().unwrap().len(),
        2,
        "{reply}"
    );
    let listen = v["proxies"][0]["listen"].as_str().unwrap().to_owned();
    let mut c = within("connect", tokio::net::TcpStream::connect(&listen))
        .await
        .unwrap();
    let msg = pattern(600, 1);
    send(&mut c, &msg).await;
    assert_eq!(read_n(&mut c, 600).await, msg);
    // The same proxy and list with one toxic changed and one added: `cap` is identical and
    // keeps its counter on the live connection.
    let extra = r#",{"name":"new","type":"noop"}"#;
    let (status, reply) = http(api, "POST", "/populate", &body(&listen, 20, extra)).await;
    assert_eq!(status, 201, "{reply}");
    let t = toxics_of(api, "db").await;
    let names: Vec<&str> = t
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["slow", "cap", "new"],
        "upstream first, then downstream"
    );
    assert_eq!(t[0]["attributes"]["latency"], 20);
    let msg = pattern(600, 2);
    send(&mut c, &msg).await;
    let (got, _) = read_to_end(&mut c).await;
    assert_eq!(
        got,
        msg[..400],
        "the counter survived the reconcile: 1000 bytes in all"
    );
    // `toxics` absent leaves them alone; an empty list removes them all.
    let (status, reply) = http(
        api,
        "POST",
        "/populate",
        &format!(r#"[{{"name":"db","listen":"{listen}","upstream":"{up}"}}]"#),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(toxics_of(api, "db").await.as_array().unwrap().len(), 3);
    let (status, _) = http(
        api,
        "POST",
        "/populate",
        &format!(r#"[{{"name":"db","listen":"{listen}","upstream":"{up}","toxics":[]}}]"#),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(toxics_of(api, "db").await, serde_json::json!([]));
}

#[tokio::test]
async fn populate_validates_every_toxic_before_applying_anything() {
    let server = server().await;
    let api = server.api_addr();
    let up = echo_upstream().await;
    let (status, _) = http(
        api,
        "POST",
        "/populate",
        &format!(r#"[{{"name":"a","listen":"127.0.0.1:0","upstream":"{up}","toxics":[{{"type":"noop"}}]}}]"#),
    )
    .await;
    assert_eq!(status, 201);
    let cases = [
        (
            r#"{"type":"nope"}"#,
            "invalid toxic type at proxy 2 toxic 1",
        ),
        (
            r#"{"type":"latency","schedule":{"every":"1s"}}"#,
            "schedule.every",
        ),
        (r#"{"type":"slicer"}"#, "average_size"),
        (
            r#"{"type":"latency","attributes":{"latency":"x"}}"#,
            "bad request body: json: cannot unmarshal string",
        ),
        (
            r#"{"type":"latency","stream":"sideways"}"#,
            "stream was invalid",
        ),
    ];
    for (toxic, want) in cases {
        let body = format!(
            r#"[{{"name":"a","listen":"127.0.0.1:0","upstream":"{up}","toxics":[]}},
                {{"name":"b","listen":"127.0.0.1:0","upstream":"{up}","toxics":[{toxic}]}}]"#
        );
        let (status, reply) = http(api, "POST", "/populate", &body).await;
        assert_eq!(status, 400, "{toxic}: {reply}");
        let v = json(&reply);
        assert!(
            v["error"].as_str().unwrap().contains(want),
            "{toxic}: {reply}"
        );
        assert_eq!(v["proxies"], serde_json::Value::Null);
    }
    let (status, reply) = http(
        api,
        "POST",
        "/populate",
        &format!(r#"[{{"name":"a","listen":"127.0.0.1:0","upstream":"{up}","toxics":[{{"type":"noop"}},{{"type":"noop"}}]}}]"#),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("declared twice"), "{reply}");
    let (status, reply) = http(
        api,
        "POST",
        "/populate",
        &format!(r#"[{{"name":"a","listen":"127.0.0.1:0","upstream":"{up}","toxics":5}}]"#),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    // Nothing changed: `a` keeps its toxic and `b` was never created.
    assert_eq!(toxics_of(api, "a").await.as_array().unwrap().len(), 1);
    let (status, _) = http(api, "GET", "/proxies/b", "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn config_file_with_toxics_applies_before_the_api_listens() {
    let dir = temp_dir("config");
    let up = echo_upstream().await;
    let path = dir.join("toxi.json");
    std::fs::write(
        &path,
        format!(
            r#"[{{"name":"web","listen":"127.0.0.1:0","upstream":"{up}","toxics":[
                {{"type":"latency","attributes":{{"latency":150}},"schedule":{{"duration":"1h"}}}}]}}]"#
        ),
    )
    .unwrap();
    let server = server_with(Config {
        config_file: Some(path.clone()),
        ..Config::for_tests()
    })
    .await;
    let t = toxics_of(server.api_addr(), "web").await;
    assert_eq!(t[0]["name"], "latency_downstream");
    assert_eq!(
        t[0]["schedule"],
        serde_json::json!({"start_after":0,"duration":3_600_000})
    );
    assert_eq!(t[0]["active"], true);
    let p = server.registry().get("web").unwrap();
    let mut c = connect(&p).await;
    let start = Instant::now();
    send(&mut c, b"hi").await;
    read_n(&mut c, 2).await;
    assert!(start.elapsed() >= Duration::from_millis(145));
    server.shutdown().await;
    // An invalid toxic refuses the start.
    std::fs::write(
        &path,
        format!(r#"[{{"name":"web","listen":"127.0.0.1:0","upstream":"{up}","toxics":[{{"type":"nope"}}]}}]"#),
    )
    .unwrap();
    let err = Server::start(Config {
        config_file: Some(path.clone()),
        ..Config::for_tests()
    })
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("invalid toxic type"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn file_proxy(name: &str, up: SocketAddr, latency: u32) -> String {
    format!(
        r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{up}","toxics":[{{"name":"lat","type":"latency","attributes":{{"latency":{latency}}}}}]}}"#
    )
}

async fn proxy_names(server: &Server) -> Vec<String> {
    server
        .registry()
        .list()
        .into_iter()
        .map(|p| p.name)
        .collect()
}

#[tokio::test]
async fn watched_configmap_symlink_swap_and_invalid_reload() {
    let up = echo_upstream().await;
    let mut map = ConfigMap::new(
        "watch",
        &format!("[{},{}]", file_proxy("a", up, 10), file_proxy("b", up, 10)),
    );
    let server = server_with(Config {
        config_file: Some(map.path()),
        config_watch: true,
        proxy_metrics: true,
        ..Config::for_tests()
    })
    .await;
    let api = server.api_addr();
    proxy(&server, "from-api", up).await;
    assert_eq!(proxy_names(&server).await, ["a", "b", "from-api"]);
    // The next version drops `b`, changes `a`'s toxic and adds `c`.
    let swapped = Instant::now();
    map.publish(&format!(
        "[{},{}]",
        file_proxy("a", up, 99),
        file_proxy("c", up, 5)
    ));
    eventually("the swapped version applies", || async {
        let names = proxy_names(&server).await;
        if names == ["a", "c", "from-api"] {
            Ok(())
        } else {
            Err(names)
        }
    })
    .await;
    let seen = swapped.elapsed();
    assert!(seen < Duration::from_secs(2), "seen after {seen:?}");
    eventually("a's toxic updated", || async {
        let t = toxics_of(api, "a").await;
        if t[0]["attributes"]["latency"] == 99 {
            Ok(())
        } else {
            Err(t)
        }
    })
    .await;
    assert_eq!(server.registry().metrics().config_reloads(), (1, 0));
    // An invalid version changes nothing and is counted.
    map.publish(&format!("[{}, {{\"name\":\"d\"", file_proxy("a", up, 1)));
    eventually("the invalid version is refused", || async {
        match server.registry().metrics().config_reloads() {
            (1, 1) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(proxy_names(&server).await, ["a", "c", "from-api"]);
    assert_eq!(toxics_of(api, "a").await[0]["attributes"]["latency"], 99);
    // A bad toxic is refused the same way.
    map.publish(&format!(
        r#"[{{"name":"a","listen":"127.0.0.1:0","upstream":"{up}","toxics":[{{"type":"slicer"}}]}}]"#
    ));
    eventually("the bad toxic is refused", || async {
        match server.registry().metrics().config_reloads() {
            (1, 2) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(proxy_names(&server).await, ["a", "c", "from-api"]);
    // The next valid version applies; the API's proxy is never touched.
    map.publish(&format!("[{}]", file_proxy("c", up, 7)));
    eventually("the next valid version applies", || async {
        let names = proxy_names(&server).await;
        if names == ["c", "from-api"] {
            Ok(())
        } else {
            Err(names)
        }
    })
    .await;
    assert!(toxics_of(api, "from-api")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    let (_, metrics) = http(api, "GET", "/metrics", "").await;
    assert!(
        metrics.contains("toxi_config_reloads_total{result=\"error\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("toxi_config_reloads_total{result=\"ok\"} 2\n"),
        "{metrics}"
    );
    server.shutdown().await;
}

/// `SIGHUP` re-reads the file (here changed in place, with file events possibly missed).
#[test]
fn sighup_reloads_the_config_file() {
    use crate::process::{server_command, spawn};
    let dir = temp_dir("hup");
    let path = dir.join("toxi.json");
    let write = |latency: u32| {
        std::fs::write(
            &path,
            format!(
                "[{}]",
                file_proxy("hup", "127.0.0.1:9".parse().unwrap(), latency)
            ),
        )
        .unwrap();
    };
    write(1);
    let mut command = server_command();
    command
        .arg(format!("-config={}", path.display()))
        .env("TOXI_CONFIG_WATCH", "1");
    let proc = spawn(command);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = toxics_of(proc.api, "hup").await;
        assert_eq!(t[0]["attributes"]["latency"], 1);
        write(2);
        let pid = proc.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our child's pid touches no memory of this process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
        eventually("SIGHUP applies the file", || async {
            let t = toxics_of(proc.api, "hup").await;
            if t[0]["attributes"]["latency"] == 2 {
                Ok(())
            } else {
                Err(t)
            }
        })
        .await;
        // The server is still running after the signal.
        let (status, _) = http(proc.api, "GET", "/version", "").await;
        assert_eq!(status, 200);
    });
    drop(proc);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file path that does not exist yet is fine with `-config-watch`: it applies once written.
#[tokio::test]
async fn a_watched_file_may_appear_later() {
    let dir = temp_dir("later");
    let path: &Path = &dir.join("late.json");
    let server = server_with(Config {
        config_file: Some(path.to_path_buf()),
        config_watch: true,
        ..Config::for_tests()
    })
    .await;
    let up = echo_upstream().await;
    std::fs::write(path, format!("[{}]", file_proxy("late", up, 3))).unwrap();
    eventually("the new file applies", || async {
        let names = proxy_names(&server).await;
        if names == ["late"] {
            Ok(())
        } else {
            Err(names)
        }
    })
    .await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The typed client: `populate` with toxics, and the schedule fields as `Option`s.
#[tokio::test]
async fn typed_client_populates_toxics_with_schedules() {
    use toxi::client::{NewProxy, NewToxic, Schedule, ToxicUpdate};
    let server = server().await;
    let client = server.client();
    let up = echo_upstream().await;
    let proxies = client
        .populate(&[
            NewProxy::new("typed", "127.0.0.1:0", up.to_string()).toxics(vec![
                NewToxic::new("latency")
                    .attribute("latency", 5)
                    .schedule(Schedule {
                        duration: Some(60_000),
                        ..Schedule::default()
                    }),
                NewToxic::new("noop").upstream(),
            ]),
        ])
        .await
        .unwrap();
    let toxics = &proxies[0].toxics;
    assert_eq!(toxics.len(), 2);
    assert_eq!(toxics[0].schedule, None);
    let schedule = toxics[1].schedule.expect("a schedule");
    assert_eq!(
        (schedule.start_after, schedule.duration, schedule.every),
        (0, Some(60_000), None)
    );
    assert!(schedule.active);
    let cleared = client
        .update_toxic(
            "typed",
            "latency_downstream",
            &ToxicUpdate {
                schedule: Some(None),
                ..ToxicUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.schedule, None);
}
