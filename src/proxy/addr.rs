//! Listen-address parsing, resolution and binding, with the reference's reporting rules:
//! `localhost` binds 127.0.0.1, wildcards (`""`, `:P`, `0.0.0.0:P`, `[::]:P`) bind a
//! dual-stack socket reported as `[::]:P`, and errors read like Go's `net` errors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use crate::gocompat::{errno_text, split_host_port};

/// A listen address after resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// What Go's `TCPAddr.String()` gives for it (used by the "differs" rule).
    pub display: String,
    pub target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// All interfaces, dual-stack when the host has IPv6.
    Wildcard(u16),
    Addr(SocketAddr),
}

/// Resolves a listen string. Errors have no `listen tcp:` prefix (the update and populate
/// paths report them like that; `bind` adds the prefix for the create path).
pub(crate) fn resolve(listen: &str) -> Result<Resolved, String> {
    if listen.is_empty() {
        return Ok(Resolved {
            display: ":0".into(),
            target: Target::Wildcard(0),
        });
    }
    let (host, port_str) = split_host_port(listen)?;
    let port: u16 = if port_str.is_empty() {
        0
    } else {
        port_str
            .parse()
            .map_err(|_| format!("address {listen}: invalid port"))?
    };
    if host.is_empty() {
        return Ok(Resolved {
            display: format!(":{port}"),
            target: Target::Wildcard(port),
        });
    }
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => {
            let addrs: Vec<SocketAddr> = (host, port)
                .to_socket_addrs()
                .map_err(|_| format!("lookup {host}: no such host"))?
                .collect();
            // Like Go, prefer the first IPv4 address.
            let pick = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first());
            pick.ok_or_else(|| format!("lookup {host}: no such host"))?
                .ip()
        }
    };
    let sa = SocketAddr::new(ip, port);
    let target = if ip.is_unspecified() {
        Target::Wildcard(port)
    } else {
        Target::Addr(sa)
    };
    Ok(Resolved {
        display: sa.to_string(),
        target,
    })
}

/// [`resolve`] without blocking the caller's runtime: a hostname is looked up on tokio's
/// blocking pool (the API thread keeps answering while a slow resolver thinks); address
/// literals and malformed strings are handled inline.
pub(crate) async fn resolve_async(listen: &str) -> Result<Resolved, String> {
    let needs_lookup = split_host_port(listen)
        .is_ok_and(|(host, _)| !host.is_empty() && host.parse::<IpAddr>().is_err());
    if !needs_lookup {
        return resolve(listen);
    }
    let owned = listen.to_string();
    tokio::task::spawn_blocking(move || resolve(&owned))
        .await
        .unwrap_or_else(|e| Err(format!("lookup {listen}: {e}")))
}

/// Binds a listener for `listen`, with error texts as the reference reports them on the
/// create/start path.
pub(crate) fn bind(listen: &str) -> Result<std::net::TcpListener, String> {
    let resolved = resolve(listen).map_err(|e| format!("listen tcp: {e}"))?;
    bind_resolved(&resolved)
}

/// Binds a listener for an already resolved listen address (never blocks on DNS).
pub(crate) fn bind_resolved(resolved: &Resolved) -> Result<std::net::TcpListener, String> {
    bind_group(resolved, 1).map(|mut group| group.remove(0))
}

/// Whether [`bind_group`] can give several sockets one port that the kernel balances
/// clients over (`SO_REUSEPORT` on Linux; elsewhere the option does not balance).
pub(crate) const SHARES_PORTS: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Binds `n` listening sockets on one address (an `SO_REUSEPORT` group when `n > 1`, on
/// Linux). The first socket is bound before the option is set, so binding reports
/// exactly what a single socket would (`address already in use` when anything listens
/// there, this server's other proxies included, whose first sockets are plain too); the
/// others then join it on the port it got. A later socket that cannot join is left out:
/// the group is smaller, never an error.
pub(crate) fn bind_group(
    resolved: &Resolved,
    n: usize,
) -> Result<Vec<std::net::TcpListener>, String> {
    let share = n > 1 && SHARES_PORTS;
    let attempt =
        |addr: SocketAddr, dual: bool, join: bool| -> std::io::Result<std::net::TcpListener> {
            let domain = socket2::Domain::for_address(addr);
            let sock =
                socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
            if dual {
                sock.set_only_v6(false)?;
            }
            sock.set_reuse_address(true)?;
            sock.set_nonblocking(true)?;
            // Linux gives every accepted client the listener's `TCP_NODELAY`, which
            // saves a `setsockopt` per connection (on other systems `connection::serve`
            // sets it on each client).
            let _ = sock.set_tcp_nodelay(true);
            if join {
                set_reuse_port(&sock)?;
            }
            sock.bind(&addr.into())?;
            if share && !join {
                set_reuse_port(&sock)?;
            }
            sock.listen(1024)?;
            Ok(sock.into())
        };
    let (first, dual) = match resolved.target {
        Target::Wildcard(port) => {
            match attempt(
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                true,
                false,
            ) {
                Ok(l) => (Ok(l), true),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => (Err(e), true),
                Err(_) => (
                    attempt(
                        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                        false,
                        false,
                    ),
                    false,
                ),
            }
        }
        Target::Addr(addr) => (attempt(addr, false, false), false),
    };
    let first =
        first.map_err(|e| format!("listen tcp {}: bind: {}", resolved.display, errno_text(&e)))?;
    let mut group = Vec::with_capacity(n);
    if share {
        if let Ok(at) = first.local_addr() {
            for _ in 1..n {
                match attempt(at, dual, true) {
                    Ok(l) => group.push(l),
                    Err(_) => break,
                }
            }
        }
    }
    group.insert(0, first);
    Ok(group)
}

/// On a connection within this host (a loopback peer, or a peer at the socket's own
/// address, as a pod's containers reach each other), replaces a pacing congestion
/// control (the system default is BBR) with Reno, which any process may choose. Links call
/// it on their destination when they start streaming in bulk (the first splice burst), so
/// small-message connections never pay for it. BBR spaces its segments out with a timer at
/// the rate it has measured, and a proxy's socket on loopback measures the rate of the
/// other side's wake-ups: iperf3 through `toxi-server` ran at 2.4 GB/s with BBR on the
/// proxy's sockets and 4.3-4.7 GB/s with Reno, against 3.1-4.4 GB/s direct (with BBR).
/// Within one host there is no congestion to control, so nothing else changes. With any
/// other default this does nothing beyond reading the default, once per process.
pub(crate) fn unpace_within_host(sock: socket2::SockRef<'_>) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if default_paces() {
        let ip = |a: std::io::Result<socket2::SockAddr>| a.ok()?.as_socket().map(|a| a.ip());
        if let (Some(peer), Some(local)) = (ip(sock.peer_addr()), ip(sock.local_addr())) {
            if within_host(peer, local) {
                let _ = sock.set_tcp_congestion(b"reno");
            }
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = sock;
}

/// Whether a connection from `local` to `peer` stays on this host.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
fn within_host(peer: IpAddr, local: IpAddr) -> bool {
    let peer = peer.to_canonical();
    peer.is_loopback() || peer == local.to_canonical()
}

/// Whether the system's default congestion control paces (BBR), as far as it can be read.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn default_paces() -> bool {
    static PACES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PACES.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
            .is_ok_and(|name| name.trim().starts_with("bbr"))
    })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_reuse_port(sock: &socket2::Socket) -> std::io::Result<()> {
    sock.set_reuse_port(true)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_reuse_port(_: &socket2::Socket) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback connection leaves a pacing default (BBR) for Reno; with any other
    /// default it keeps what it has.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn loopback_sockets_are_not_paced() {
        let name = |s: &std::net::TcpStream| {
            let raw = socket2::SockRef::from(s).tcp_congestion().unwrap();
            String::from_utf8_lossy(&raw)
                .trim_end_matches('\0')
                .to_string()
        };
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let default = name(&a);
        unpace_within_host(socket2::SockRef::from(&a));
        if default.starts_with("bbr") {
            assert!(default_paces());
            assert_eq!(name(&a), "reno");
        } else {
            assert_eq!(name(&a), default);
        }
    }

    #[test]
    fn within_host_peers() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(within_host(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(within_host(ip("127.0.0.2"), ip("127.0.0.1")));
        assert!(within_host(ip("::1"), ip("::1")));
        // As a dual-stack listener sees an IPv4 client on loopback.
        assert!(within_host(ip("::ffff:127.0.0.1"), ip("::ffff:127.0.0.1")));
        // A pod's containers, through the pod's own address.
        assert!(within_host(ip("10.1.2.3"), ip("10.1.2.3")));
        assert!(within_host(ip("::ffff:10.1.2.3"), ip("10.1.2.3")));
        assert!(!within_host(ip("10.1.2.4"), ip("10.1.2.3")));
        assert!(!within_host(ip("192.0.2.1"), ip("::")));
    }

    #[test]
    fn resolve_forms() {
        assert_eq!(resolve("").unwrap().display, ":0");
        assert_eq!(resolve(":8080").unwrap().target, Target::Wildcard(8080));
        assert_eq!(resolve("0.0.0.0:80").unwrap().display, "0.0.0.0:80");
        assert_eq!(resolve("0.0.0.0:80").unwrap().target, Target::Wildcard(80));
        assert_eq!(resolve("[::]:80").unwrap().display, "[::]:80");
        assert_eq!(resolve("localhost:5").unwrap().display, "127.0.0.1:5");
        assert_eq!(resolve("[::1]:0").unwrap().display, "[::1]:0");
        assert_eq!(
            resolve("local373").unwrap_err(),
            "address local373: missing port in address"
        );
        assert_eq!(
            resolve("a:b:c").unwrap_err(),
            "address a:b:c: too many colons in address"
        );
        assert!(resolve("127.0.0.1:99999").is_err());
    }

    #[test]
    fn bind_errors_read_like_go() {
        assert_eq!(
            bind("local373").unwrap_err(),
            "listen tcp: address local373: missing port in address"
        );
        let l = bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(
            bind(&format!("127.0.0.1:{port}")).unwrap_err(),
            format!("listen tcp 127.0.0.1:{port}: bind: address already in use")
        );
    }

    /// Clients accepted on a proxy's listener have `TCP_NODELAY` without a call of their
    /// own on Linux, where `connection::serve` relies on that.
    #[test]
    fn accepted_clients_inherit_nodelay() {
        let l = bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        l.set_nonblocking(false).unwrap();
        let (accepted, _) = l.accept().unwrap();
        assert!(
            !client.nodelay().unwrap(),
            "a plain client socket has Nagle on"
        );
        if cfg!(any(target_os = "linux", target_os = "android")) {
            assert!(accepted.nodelay().unwrap());
        }
    }

    /// A port-sharing group answers a second bind exactly as one socket does, and its
    /// members all sit on the port the first one got.
    #[test]
    fn a_group_keeps_the_single_socket_rules() {
        let group = bind_group(&resolve("127.0.0.1:0").unwrap(), 3).unwrap();
        let port = group[0].local_addr().unwrap().port();
        assert_eq!(group.len(), if SHARES_PORTS { 3 } else { 1 });
        for l in &group {
            assert_eq!(l.local_addr().unwrap().port(), port);
        }
        let busy = resolve(&format!("127.0.0.1:{port}")).unwrap();
        for n in [1, 2] {
            assert_eq!(
                bind_group(&busy, n).unwrap_err(),
                format!("listen tcp 127.0.0.1:{port}: bind: address already in use")
            );
        }
        // A wildcard group on a port that a loopback group holds is refused too.
        assert!(bind_group(&resolve(&format!(":{port}")).unwrap(), 2).is_err());
        drop(group);
        assert!(
            bind_group(&busy, 2).is_ok(),
            "the port is free once the group closes"
        );
    }
}
