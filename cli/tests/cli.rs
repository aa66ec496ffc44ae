//! The `toxi` binary against an in-process toxi server: the seed session, every command's
//! success and error paths, both output modes, help, globals, extras, and the golden set.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{free_port, roundtrip, Cli, TestServer};

const GREEN: &str = "\x1b[32m";
const BLUE: &str = "\x1b[34m";
const YELLOW: &str = "\x1b[33m";
const PURPLE: &str = "\x1b[35m";
const RED: &str = "\x1b[31m";
const NONE: &str = "\x1b[0m";

fn list_header() -> String {
    format!(
        "{GREEN}Name\t\t\t{BLUE}Listen\t\t{YELLOW}Upstream\t\t{PURPLE}Enabled\t\t{RED}Toxics\n{NONE}{NONE}{}\n",
        "=".repeat(86)
    )
}

/// The session of the seed scenario, typed as written (name before the flags, `--a`), with
/// `toxi` for `toxiproxy-cli` and loopback addresses.
#[test]
fn seed_session_word_for_word() {
    let server = TestServer::start();
    let echo = server.echo_upstream();
    let listen = format!("127.0.0.1:{}", free_port());
    let upstream = format!("localhost:{}", echo.port());

    let out = server.cli(&["list"]).run_tty(false);
    assert_eq!(
        out.stdout,
        format!(
            "{}{RED}no proxies\n{NONE}\n{NONE}Hint: create a proxy with `toxi create`\n",
            list_header()
        )
    );
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));

    let out = server
        .cli(&["create", "chaos", "-l", &listen, "-u", &upstream])
        .run();
    assert_eq!(out.ok(), "Created new proxy chaos\n");

    let out = server.cli(&["list"]).run_tty(false);
    assert_eq!(
        out.stdout,
        format!(
            "{}{GREEN}chaos{NONE}\t\t\t{BLUE}{listen}{NONE}\t{YELLOW}{upstream}{NONE}\t\t{PURPLE}enabled{NONE}\t\t{RED}None{NONE}\n\n{NONE}Hint: inspect toxics with `toxi inspect <proxyName>`\n",
            list_header()
        )
    );

    let out = server
        .cli(&[
            "toxic",
            "add",
            "--type",
            "latency",
            "--a",
            "latency=250",
            "--upstream",
            "chaos",
        ])
        .run();
    assert_eq!(
        out.ok(),
        "Added upstream latency toxic 'latency_upstream' on proxy 'chaos'\n"
    );

    let out = server.cli(&["inspect", "chaos"]).run_tty(false);
    assert_eq!(
        out.stdout,
        format!(
            "{PURPLE}Name: {NONE}chaos\t{BLUE}Listen: {NONE}{listen}\t{YELLOW}Upstream: {NONE}{upstream}\n{NONE}{}\n{GREEN}Upstream toxics:\n{NONE}{BLUE}latency_upstream:{NONE}\ttype=latency\tstream=upstream\ttoxicity=1.00\tattributes=[\tjitter=0\tlatency=250\t]\n\n{GREEN}Downstream toxics:\n{NONE}{RED}Proxy has no Downstream toxics enabled.\n{NONE}\n{NONE}Hint: add a toxic with `toxi toxic add`\n",
            "=".repeat(70)
        )
    );

    // The toxic is live: a request through `chaos` takes about 250 ms more.
    let (echoed, elapsed) = roundtrip(&listen, b"ping");
    assert_eq!(echoed, b"ping");
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
}

#[test]
fn proxy_commands_for_scripts() {
    let server = TestServer::start();
    let echo = server.echo_upstream();
    let p1 = format!("127.0.0.1:{}", free_port());
    let up = echo.to_string();

    assert_eq!(server.cli(&["list"]).run().ok(), "");
    assert_eq!(
        server.cli(&["new", "-l", &p1, "-u", &up, "web"]).run().ok(),
        "Created new proxy web\n"
    );
    assert_eq!(
        server
            .cli(&["c", "--listen=127.0.0.1:0", "--upstream", "x:1", "api"])
            .run()
            .ok(),
        "Created new proxy api\n"
    );
    let rows = server.cli(&["ls"]).run();
    let lines: Vec<&str> = rows.ok().lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("api\t127.0.0.1:"), "{}", lines[0]);
    assert!(lines[0].ends_with("\tx:1\tenabled\t0"), "{}", lines[0]);
    assert_eq!(lines[1], format!("web\t{p1}\t{up}\tenabled\t0"));
    assert_eq!(roundtrip(&p1, b"hello").0, b"hello");

    // Inspect with no toxics prints nothing in script mode.
    assert_eq!(server.cli(&["ins", "web"]).run().ok(), "");

    // Toggle off and on; the data path follows.
    assert_eq!(
        server.cli(&["tog", "web"]).run().ok(),
        "Proxy web is now disabled\n"
    );
    assert_eq!(
        server.cli(&["l"]).run().ok().lines().nth(1).unwrap(),
        format!("web\t{p1}\t{up}\tdisabled\t0")
    );
    assert!(std::net::TcpStream::connect(&p1).is_err());
    assert_eq!(
        server.cli(&["toggle", "web"]).run().ok(),
        "Proxy web is now enabled\n"
    );
    assert_eq!(roundtrip(&p1, b"again").0, b"again");

    assert_eq!(server.cli(&["d", "api"]).run().ok(), "Deleted proxy api\n");
    assert_eq!(
        server.cli(&["delete", "web"]).run().ok(),
        "Deleted proxy web\n"
    );
    assert_eq!(server.cli(&["li"]).run().ok(), "");
}

#[test]
fn proxy_command_errors() {
    let server = TestServer::start();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    server
        .cli(&["create", "-l", "127.0.0.1:0", "-u", "x:1", "p"])
        .run()
        .ok();

    let out = server
        .cli(&["create", "-l", "127.0.0.1:0", "-u", "x:1", "p"])
        .run();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            1,
            "",
            "Failed to create proxy: Create: HTTP 409: proxy already exists\n\n"
        )
    );
    let out = server
        .cli(&["create", "-l", &busy_addr.to_string(), "-u", "x:1", "q"])
        .run();
    assert_eq!(
        out.stderr,
        format!("Failed to create proxy: Create: HTTP 500: listen tcp {busy_addr}: bind: address already in use\n\n")
    );
    for cmd in ["inspect", "toggle", "delete"] {
        let out = server.cli(&[cmd, "nope"]).run();
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (
                1,
                "Failed to retrieve proxy nope: HTTP 404: proxy not found\n\n"
            ),
            "{cmd}"
        );
        let out = server.cli(&[cmd]).run();
        assert_eq!(out.code, 1, "{cmd}");
        assert_eq!(
            out.stderr,
            "Proxy name is required as the first argument.\n\n"
        );
        assert!(
            out.stdout.starts_with(&format!("NAME:\n   toxi {cmd} -")),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("\nCOMMANDS:\n   help, h  Shows a list"));
    }
    let out = server.cli(&["create", "-u", "x:1", "p2"]).run();
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Required argument 'listen' was empty.\n\n")
    );
    let out = server.cli(&["create", "-l", "127.0.0.1:0", "p2"]).run();
    assert_eq!(out.stderr, "Required argument 'upstream' was empty.\n\n");
    drop(busy);
}

#[test]
fn toxic_commands_and_errors() {
    let server = TestServer::start();
    server
        .cli(&["create", "-l", "127.0.0.1:0", "-u", "x:1", "chaos"])
        .run()
        .ok();
    let add = |args: &[&str]| {
        let mut all = vec!["toxic", "add"];
        all.extend_from_slice(args);
        server.cli(&all).run()
    };
    assert_eq!(
        add(&[
            "-t",
            "latency",
            "-a",
            "latency=1000",
            "-a",
            "jitter=5",
            "chaos"
        ])
        .ok(),
        "Added downstream latency toxic 'latency_downstream' on proxy 'chaos'\n"
    );
    assert_eq!(
        add(&[
            "-n",
            "lim",
            "-t",
            "limit_data",
            "--tox",
            "0.25",
            "-a",
            "bytes=1000000",
            "-u",
            "chaos"
        ])
        .ok(),
        "Added upstream limit_data toxic 'lim' on proxy 'chaos'\n"
    );
    // Flags after the proxy name, comma-separated attributes, the `t a` aliases.
    assert_eq!(
        server
            .cli(&[
                "t",
                "a",
                "chaos",
                "-t",
                "slicer",
                "-n",
                "cut",
                "-a",
                "average_size=10,size_variation=5,delay=20"
            ])
            .run()
            .ok(),
        "Added downstream slicer toxic 'cut' on proxy 'chaos'\n"
    );
    assert_eq!(
        server.cli(&["inspect", "chaos"]).run().ok(),
        "lim\ttype=limit_data\tstream=upstream\ttoxicity=0.25\tattributes=[\tbytes=1e+06\t]\n\
         latency_downstream\ttype=latency\tstream=downstream\ttoxicity=1.00\tattributes=[\tjitter=5\tlatency=1000\t]\n\
         cut\ttype=slicer\tstream=downstream\ttoxicity=1.00\tattributes=[\taverage_size=10\tdelay=20\tsize_variation=5\t]\n"
    );

    // Update without --toxicity resets it to 1, as the reference does.
    assert_eq!(
        server
            .cli(&["toxic", "update", "-n", "lim", "-a", "bytes=5", "chaos"])
            .run()
            .ok(),
        "Updated toxic 'lim' on proxy 'chaos'\n"
    );
    assert_eq!(
        server
            .cli(&[
                "t",
                "u",
                "chaos",
                "-n",
                "latency_downstream",
                "--toxicity=0.5",
                "-a",
                "jitter=25"
            ])
            .run()
            .ok(),
        "Updated toxic 'latency_downstream' on proxy 'chaos'\n"
    );
    let rows = server.cli(&["inspect", "chaos"]).run();
    let rows: Vec<&str> = rows.ok().lines().collect();
    assert_eq!(
        rows[0],
        "lim\ttype=limit_data\tstream=upstream\ttoxicity=1.00\tattributes=[\tbytes=5\t]"
    );
    assert_eq!(
        rows[1],
        "latency_downstream\ttype=latency\tstream=downstream\ttoxicity=0.50\tattributes=[\tjitter=25\tlatency=1000\t]"
    );

    assert_eq!(
        server
            .cli(&["toxic", "remove", "-n", "lim", "chaos"])
            .run()
            .ok(),
        "Removed toxic 'lim' on proxy 'chaos'\n"
    );
    assert_eq!(
        server
            .cli(&["t", "d", "chaos", "--toxicName", "cut"])
            .run()
            .ok(),
        "Removed toxic 'cut' on proxy 'chaos'\n"
    );

    let fails = [
        (
            vec!["toxic", "add", "-t", "latency", "chaos"],
            "Failed to add toxic: failed to add toxic to proxy chaos: AddToxic: HTTP 409: toxic already exists\n\n",
        ),
        (
            vec!["toxic", "add", "-t", "bogus", "chaos"],
            "Failed to add toxic: failed to add toxic to proxy chaos: AddToxic: HTTP 400: invalid toxic type\n\n",
        ),
        (
            vec!["toxic", "add", "-t", "latency", "nope"],
            "Failed to add toxic: failed to retrieve proxy with name `nope`: HTTP 404: proxy not found\n\n",
        ),
        (
            vec!["toxic", "add", "-n", "bad", "-t", "latency", "-a", "latency=abc", "chaos"],
            "Failed to add toxic: failed to add toxic to proxy chaos: AddToxic: HTTP 400: bad request body: json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type int64\n\n",
        ),
        (
            vec!["toxic", "add", "-t", "latency", "-u", "-d", "chaos"],
            "Only one should be specified: upstream or downstream.\n\n",
        ),
        (
            vec!["toxic", "add", "-t", "latency", "--tox", "1.5", "chaos"],
            "toxicity should be a float between 0 and 1.\n\n",
        ),
        (
            vec!["toxic", "update", "-n", "nope", "chaos"],
            "Failed to update toxic: failed to update toxic 'nope' of proxy 'chaos': HTTP 404: toxic not found\n\n",
        ),
        (
            vec!["toxic", "update", "chaos"],
            "Failed to update toxic: failed to update toxic '' of proxy 'chaos': json: cannot unmarshal number into Go value of type toxiproxy.ApiError\n\n",
        ),
        (
            vec!["toxic", "update", "-n", "x", "nope"],
            "Failed to update toxic: failed to retrieve proxy with name `nope`: HTTP 404: proxy not found\n\n",
        ),
        (
            vec!["toxic", "remove", "-n", "latency_upstream", "chaos"],
            "Failed to remove toxic: failed to remove toxic 'latency_upstream' from proxy 'chaos': HTTP 404: toxic not found\n\n",
        ),
        (
            vec!["toxic", "remove", "chaos"],
            "Failed to remove toxic: failed to remove toxic '' from proxy 'chaos': json: cannot unmarshal number into Go value of type toxiproxy.ApiError\n\n",
        ),
        (
            vec!["toxic", "remove", "-n", "x", "nope"],
            "Failed to remove toxic: failed to retrieve proxy with name `nope`: HTTP 404: proxy not found\n\n",
        ),
    ];
    for (args, stderr) in fails {
        let out = server.cli(&args).run();
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (1, "", stderr),
            "{args:?}"
        );
    }
    for (args, stderr) in [
        (
            vec!["toxic", "add", "-t", "latency"],
            "Proxy name is missing.\n\n",
        ),
        (
            vec!["toxic", "add", "chaos"],
            "Required argument 'type' was empty.\n\n",
        ),
        (
            vec!["toxic", "update", "-n", "x"],
            "Proxy name is missing.\n\n",
        ),
        (
            vec!["toxic", "remove", "-n", "x"],
            "Proxy name is missing.\n\n",
        ),
    ] {
        let out = server.cli(&args).run();
        assert_eq!((out.code, out.stderr.as_str()), (1, stderr), "{args:?}");
        assert!(
            out.stdout.starts_with("NAME:\n   toxi toxic "),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn terminal_output() {
    let server = TestServer::start();
    server
        .cli(&[
            "create",
            "-l",
            "127.0.0.1:0",
            "-u",
            "localhost:1",
            "a_very_long_proxy_name_x",
        ])
        .run()
        .ok();
    server
        .cli(&["create", "-l", "127.0.0.1:0", "-u", "localhost:1", "off"])
        .run()
        .ok();
    server
        .cli(&["toxic", "add", "-t", "noop", "-u", "off"])
        .run()
        .ok();

    let out = server.cli(&["toggle", "off"]).run_tty(false);
    assert_eq!(
        out.stdout,
        format!("Proxy {RED}off{NONE} is now {RED}disabled{NONE}\n")
    );
    let listens: Vec<String> = server
        .cli(&["list"])
        .run()
        .ok()
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap().to_string())
        .collect();
    let out = server.cli(&["list"]).run_tty(false);
    assert_eq!(
        out.stdout,
        format!(
            "{}{GREEN}a_very_long_proxy_name_x{NONE}\t{BLUE}{}{NONE}\t{YELLOW}localhost:1{NONE}\t\t{PURPLE}enabled{NONE}\t\t{RED}None{NONE}\n\
             {RED}off{NONE}\t\t\t{BLUE}{}{NONE}\t{YELLOW}localhost:1{NONE}\t\t{PURPLE}disabled{NONE}\t{RED}1{NONE}\n\n{NONE}Hint: inspect toxics with `toxi inspect <proxyName>`\n",
            list_header(),
            listens[0],
            listens[1]
        )
    );
    let out = server
        .cli(&["inspect", "a_very_long_proxy_name_x"])
        .run_tty(false);
    assert!(out
        .stdout
        .ends_with(&format!("{RED}Proxy has no toxics enabled.\n{NONE}\n{NONE}Hint: add a toxic with `toxi toxic add`\n")));
    let out = server.cli(&["inspect", "off"]).run_tty(false);
    assert!(out.stdout.contains(&format!(
        "{GREEN}Upstream toxics:\n{NONE}{BLUE}noop_upstream:{NONE}\ttype=noop\tstream=upstream\ttoxicity=1.00\tattributes=[\t]\n\n{GREEN}Downstream toxics:\n{NONE}{RED}Proxy has no Downstream toxics enabled.\n{NONE}"
    )));
    let out = server.cli(&["tog", "off"]).run_tty(false);
    assert_eq!(
        out.stdout,
        format!("Proxy {GREEN}off{NONE} is now {GREEN}enabled{NONE}\n")
    );
    // Messages without colour are the same on a terminal.
    let out = server.cli(&["delete", "off"]).run_tty(false);
    assert_eq!(out.stdout, "Deleted proxy off\n");
}

#[test]
fn json_output() {
    let server = TestServer::start();
    server
        .cli(&["create", "-l", "127.0.0.1:0", "-u", "x:1", "b"])
        .run()
        .ok();
    server
        .cli(&["create", "-l", "127.0.0.1:0", "-u", "y:2", "a"])
        .run()
        .ok();
    server
        .cli(&[
            "toxic",
            "add",
            "-t",
            "latency",
            "-a",
            "latency=1000000",
            "b",
        ])
        .run()
        .ok();
    let out = server.cli(&["list", "-o", "json"]).run();
    let list: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(list[1]["toxics"][0]["attributes"]["latency"], 1000000);
    // JSON is the same on a terminal, and `--output=json` works after the name too.
    let out = server
        .cli(&["inspect", "b", "--output=json"])
        .run_tty(false);
    let proxy: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(proxy["upstream"], "x:1");
    assert_eq!(proxy["toxics"][0]["name"], "latency_downstream");
    let out = server.cli(&["list", "-o", "yaml"]).run();
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Unknown output format 'yaml': use text or json.\n\n")
    );
}

#[test]
fn host_flag_environment_and_token() {
    let server = TestServer::start();
    server
        .cli(&["create", "-l", "127.0.0.1:0", "-u", "x:1", "web"])
        .run()
        .ok();
    let row = |out: &support::Output| out.ok().split('\t').next().unwrap_or("").to_string();

    let env = Cli::args(&["list"])
        .env("TOXIPROXY_URL", server.url())
        .run();
    assert_eq!(row(&env), "web");
    let no_scheme = Cli::args(&["-h", server.hostport(), "ls"]).run();
    assert_eq!(row(&no_scheme), "web");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let flag_wins = Cli::args(&["--host", server.url(), "list"])
        .env("TOXIPROXY_URL", &dead)
        .run();
    assert_eq!(row(&flag_wins), "web");

    // -h after the command asks for help, as in the reference.
    let out = Cli::args(&["list", "-h", server.url()]).run();
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with(
        "Incorrect Usage: flag: help requested\n\nNAME:\n   toxi list - list all proxies\n"
    ));

    // A server that wants a token.
    let guarded = TestServer::start_with(toxi::server::Config {
        api_token: Some("s3cret".into()),
        ..toxi::server::Config::for_tests()
    });
    let out = guarded.cli(&["list"]).run();
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Failed to retrieve proxies: HTTP 401: unauthorized\n")
    );
    let out = guarded.cli(&["list"]).env("TOXI_API_TOKEN", "s3cret").run();
    assert_eq!(out.ok(), "");
}

#[test]
fn unreachable_server() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = Cli::args(&["-h", &url, "list"]).run();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            1,
            "",
            format!("Failed to retrieve proxies: fail to request: Get \"{url}/proxies\": dial tcp 127.0.0.1:{port}: connect: connection refused\n").as_str()
        )
    );
    let out = Cli::args(&["-h", &url, "inspect", "p"]).run();
    assert_eq!(
        out.stderr,
        format!("Failed to retrieve proxy p: fail to request: Get \"{url}/proxies/p\": dial tcp 127.0.0.1:{port}: connect: connection refused\n\n")
    );
    // On a terminal, a hint names the address and how to change it.
    let out = Cli::args(&["list"])
        .env("TOXIPROXY_URL", &format!("127.0.0.1:{port}"))
        .run_tty(true);
    assert_eq!(out.code, 1);
    assert!(out
        .stderr
        .starts_with("Failed to retrieve proxies: fail to request: "));
    assert!(
        out.stderr.contains(&format!(
            "Hint: nothing answered at {url} (from TOXIPROXY_URL)"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("-h <url>") && out.stderr.contains("TOXIPROXY_URL"));
    let out = Cli::args(&["-h", "https://127.0.0.1:1", "list"]).run();
    assert!(
        out.stderr.contains("https is not supported"),
        "{}",
        out.stderr
    );
}

/// A link named `toxiproxy-cli` makes help pages use that name.
fn link_named(name: &str) -> (tempdir::TempDir, PathBuf) {
    let dir = tempdir::TempDir::new();
    let link = dir.path().join(name);
    std::os::unix::fs::symlink(support::toxi_bin(), &link).unwrap();
    (dir, link)
}

/// A scratch directory removed on drop (no extra crate needed).
mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "toxi-cli-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn help_version_and_usage_errors() {
    let version = env!("CARGO_PKG_VERSION");
    let out = Cli::args(&["--version"]).run();
    assert_eq!(out.ok(), format!("toxi version {version}\n"));
    let (_dir, link) = link_named("toxiproxy-cli");
    let out = Cli::args(&["-v"]).program(&link).run();
    assert_eq!(out.ok(), format!("toxiproxy-cli version {version}\n"));

    let main = Cli::args(&[]).program(&link).run();
    assert!(main.ok().starts_with(
        "NAME:\n   toxiproxy-cli - Simulate network and system conditions\n\nUSAGE:\n"
    ));
    assert!(main.stdout.contains(&format!("VERSION:\n   {version}\n")));
    assert_eq!(Cli::args(&["--help"]).program(&link).run(), main);
    assert_eq!(Cli::args(&["help"]).program(&link).run(), main);

    let create = Cli::args(&["create", "--help"]).program(&link).run();
    assert_eq!(
        create.ok(),
        "NAME:\n   toxiproxy-cli create - create a new proxy\n                            usage: 'toxiproxy-cli create --listen <addr> --upstream <addr> <proxyName>'\n\n\nUSAGE:\n   toxiproxy-cli create [command options]\n\nOPTIONS:\n   --listen value, -l value    proxy will listen on this address\n   --upstream value, -u value  proxy will forward to this address\n   --help                      show help (default: false)\n"
    );
    // The same page as `toxi`: the NAME continuation shifts with the name's length.
    let own = Cli::args(&["help", "create"]).run();
    assert!(own
        .ok()
        .starts_with("NAME:\n   toxi create - create a new proxy\n                   usage: 'toxi create --listen"));

    let out = Cli::args(&["bogus"]).run();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "", "No help topic for 'bogus'\n")
    );
    let out = Cli::args(&["--bogus", "list"]).run();
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with(
        "Incorrect Usage: flag provided but not defined: -bogus\n\nNAME:\n   toxi - "
    ));
    let out = Cli::args(&["create", "-x"]).run();
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with(
        "Incorrect Usage: flag provided but not defined: -x\n\nNAME:\n   toxi create"
    ));

    let toxic = Cli::args(&["toxic"]).run();
    assert!(toxic
        .ok()
        .contains("\nDESCRIPTION:\n   \n     Default Toxics:\n"));
    assert_eq!(Cli::args(&["t", "--help"]).run(), toxic);

    // Terminal extras: never in what a script reads.
    let add_help = Cli::args(&["toxic", "add", "--help"]).run();
    assert!(!add_help.ok().contains("TOXIC TYPES"));
    let add_help_tty = Cli::args(&["toxic", "add", "--help"]).run_tty(false);
    assert!(add_help_tty.stdout.starts_with(&add_help.stdout));
    assert!(add_help_tty.stdout.contains("TOXIC TYPES"));
    assert!(add_help_tty.stdout.contains("limit_data"));
    let main_tty = Cli::args(&[]).run_tty(false);
    assert!(main_tty.stdout.contains("TOXI EXTRAS:"));
    assert!(Cli::args(&["help", "toxics"])
        .run()
        .ok()
        .contains("delay=<us>"));
}

#[test]
fn completions() {
    let bash = Cli::args(&["completions", "bash"]).run();
    assert!(bash.ok().contains("complete -F _toxi toxi"));
    assert!(Cli::args(&["completions", "zsh"])
        .run()
        .ok()
        .starts_with("#compdef toxi\n"));
    assert!(Cli::args(&["completions", "fish"])
        .run()
        .ok()
        .contains("complete -c toxi"));
    let out = Cli::args(&["completions", "tcsh"]).run();
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Unknown shell 'tcsh': use bash, zsh or fish.\n\n")
    );

    // Run the bash completion for real when bash is available: commands, toxic types and
    // proxy names read from the server.
    if std::process::Command::new("bash")
        .arg("-c")
        .arg("true")
        .status()
        .is_err()
    {
        eprintln!("bash not found: skipping the live completion check");
        return;
    }
    let server = TestServer::start();
    server
        .cli(&["create", "-l", "127.0.0.1:0", "-u", "x:1", "redis"])
        .run()
        .ok();
    server
        .cli(&["create", "-l", "127.0.0.1:0", "-u", "x:1", "mysql"])
        .run()
        .ok();
    let dir = tempdir::TempDir::new();
    let script = dir.path().join("toxi.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let complete = |line: &str| -> String {
        let program = format!(
            "source {script}; COMP_WORDS=({line}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _toxi; echo \"${{COMPREPLY[*]}}\"",
            script = script.display()
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(program)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    support::toxi_bin().parent().unwrap().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("toxi to"), "toggle toxic");
    assert_eq!(complete("toxi toxic add -t lat"), "latency");
    assert_eq!(
        complete(&format!("toxi -h {} inspect ''", server.url())),
        "mysql redis"
    );
    assert_eq!(
        complete(&format!("toxi -h {} toxic add -t latency r", server.url())),
        "redis"
    );
}

/// The recorded `toxiproxy-cli` 2.12 goldens, run by their own runner against this server
/// and binary. Skipped when the conformance folder or python3 is not around.
#[test]
fn golden_cli_set() {
    let candidates = [
        std::env::var("TOXI_CONFORMANCE_DIR")
            .ok()
            .map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance")),
        Some(PathBuf::from("/work/shared/conformance")),
    ];
    let Some(dir) = candidates
        .into_iter()
        .flatten()
        .find(|d| d.join("golden_cli.py").is_file() && d.join("cli").is_dir())
    else {
        eprintln!("conformance goldens not found: skipping (set TOXI_CONFORMANCE_DIR)");
        return;
    };
    let server = TestServer::start();
    let run = std::process::Command::new("python3")
        .arg(dir.join("golden_cli.py"))
        .args(["check", "--quiet", server.url()])
        .arg(support::toxi_bin())
        .arg(dir.join("cli"))
        .output();
    let Ok(out) = run else {
        eprintln!("python3 not found: skipping the golden set");
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "golden CLI set: {}",
        stdout.lines().last().unwrap_or("(no output)")
    );
    assert!(
        out.status.success() && stdout.contains(", 0 failed"),
        "golden CLI set failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--after/--for/--every` set a schedule on add and update; `inspect` and `list -o json`
/// show schedule and state for such toxics only.
#[test]
fn scheduled_toxics() {
    let server = TestServer::start();
    server
        .cli(&["create", "-l", "127.0.0.1:0", "-u", "x:1", "s"])
        .run()
        .ok();
    let out = server
        .cli(&[
            "toxic",
            "add",
            "-t",
            "latency",
            "-a",
            "latency=250",
            "--after",
            "1h",
            "--for",
            "5m",
            "s",
        ])
        .run();
    assert_eq!(
        out.ok(),
        "Added downstream latency toxic 'latency_downstream' on proxy 's'\n"
    );
    server
        .cli(&["toxic", "add", "-t", "noop", "-u", "s"])
        .run()
        .ok();
    let out = server.cli(&["inspect", "s"]).run();
    assert_eq!(
        out.ok(),
        "noop_upstream\ttype=noop\tstream=upstream\ttoxicity=1.00\tattributes=[\t]\n\
         latency_downstream\ttype=latency\tstream=downstream\ttoxicity=1.00\tattributes=[\tjitter=0\tlatency=250\t]\
         \tschedule=[\tstart_after=3600000ms\tduration=300000ms\t]\tactive=false\n"
    );
    let out = server.cli(&["list", "-o", "json"]).run();
    let list: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    let toxics = &list[0]["toxics"];
    assert_eq!(toxics[0].get("schedule"), None, "unscheduled: no new keys");
    assert_eq!(toxics[0].get("active"), None);
    assert_eq!(
        toxics[1]["schedule"],
        serde_json::json!({"start_after": 3_600_000, "duration": 300_000})
    );
    assert_eq!(toxics[1]["active"], false);
    let out = server
        .cli(&[
            "toxic",
            "update",
            "-n",
            "noop_upstream",
            "--for",
            "2s",
            "--every",
            "10s",
            "s",
        ])
        .run();
    assert!(
        out.ok().starts_with("Updated toxic 'noop_upstream'"),
        "{}",
        out.stdout
    );
    let out = server.cli(&["inspect", "s"]).run();
    assert!(
        out.ok().contains(
            "\tschedule=[\tstart_after=0ms\tduration=2000ms\tevery=10000ms\t]\tactive=true\n"
        ),
        "{}",
        out.stdout
    );
    let out = server
        .cli(&[
            "toxic", "add", "-t", "noop", "-n", "bad", "--for", "soon", "s",
        ])
        .run();
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("--for should be a duration"),
        "{}",
        out.stderr
    );
    let out = server
        .cli(&[
            "toxic", "add", "-t", "noop", "-n", "bad", "--every", "5s", "s",
        ])
        .run();
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("schedule.every needs schedule.duration"),
        "{}",
        out.stderr
    );
}

#[test]
fn http_protocol_and_match() {
    use toxi::client::{Client, Match, NewToxic};
    let server = TestServer::start();
    // `--protocol` is toxi's own: accepted, and absent from the reference's help page.
    let help = server.cli(&["create", "--help"]).run();
    assert!(!help.stdout.contains("protocol"), "{}", help.stdout);
    let create = |protocol: &str, name: &str| {
        let args = ["create", "-l", "127.0.0.1:0", "-u", "x:1", protocol, name];
        server.cli(&args).run()
    };
    assert_eq!(
        create("--protocol=http", "web").ok(),
        "Created new proxy web\n"
    );
    let bad = create("--protocol=udp", "u");
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("protocol"), "{}", bad.stderr);
    let client = Client::new(server.url());
    let proxy = server.block_on(client.proxy("web")).unwrap();
    assert_eq!(proxy.protocol.as_str(), "http");

    // A toxic without a match reads as before; one with a match shows it.
    server
        .cli(&["toxic", "add", "-t", "http_reset", "-n", "r", "web"])
        .run()
        .ok();
    assert_eq!(
        server.cli(&["inspect", "web"]).run().ok(),
        "r\ttype=http_reset\tstream=downstream\ttoxicity=1.00\tattributes=[\t]\n"
    );
    let toxic = NewToxic::new("http_abort")
        .name("a")
        .toxicity(0.5)
        .attribute("status", 503)
        .matching(Match::new().method("POST").path("/api/*"));
    let made = server.block_on(client.add_toxic("web", &toxic)).unwrap();
    let matcher = made.matcher.expect("the match");
    assert_eq!(
        (matcher.method.as_deref(), matcher.path.as_deref()),
        (Some("POST"), Some("/api/*"))
    );
    let rows = server.cli(&["inspect", "web"]).run();
    let abort = rows.ok().lines().find(|l| l.starts_with("a\t")).unwrap();
    assert!(
        abort.ends_with("\t]\tmatch=[\tmethod=POST\tpath=/api/*\t]"),
        "{abort}"
    );
    let tty = server.cli(&["inspect", "web"]).run_tty(false);
    assert!(
        tty.stdout
            .contains(&format!("\t{GREEN}Protocol: {NONE}http\n")),
        "{}",
        tty.stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(server.cli(&["inspect", "web", "-o", "json"]).run().ok()).unwrap();
    assert_eq!(json["protocol"], "http");
    assert_eq!(json["toxics"][1]["match"]["path"], "/api/*");

    // Updating the match through the client; removing it hides it again.
    let update = toxi::client::ToxicUpdate::new().match_all();
    let t = server
        .block_on(client.update_toxic("web", "a", &update))
        .unwrap();
    assert!(t.matcher.is_none());
    assert!(!server
        .cli(&["inspect", "web"])
        .run()
        .ok()
        .contains("match="));

    // A tcp proxy shows no protocol.
    create("--protocol=tcp", "t").ok();
    let tty = server.cli(&["inspect", "t"]).run_tty(false);
    assert!(!tty.stdout.contains("Protocol"), "{}", tty.stdout);
}
