//! What a command runs with ([`Env`], [`Host`]) and what it gives back ([`Outcome`]): the
//! leaf that dispatch (`app`), the commands and `completions` share.

/// The crate version, printed by `--version` and on the main help page.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the program was started with, besides its arguments.
#[derive(Debug, Clone)]
pub struct Env {
    /// The program name used in help pages and hints (`toxi`, or `toxiproxy-cli` through a
    /// link of that name).
    pub prog: String,
    /// `TOXIPROXY_URL`, if set.
    pub toxiproxy_url: Option<String>,
    pub stdout_tty: bool,
    pub stderr_tty: bool,
}

/// Where the API address came from, for error hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSource {
    Flag,
    Environment,
    Default,
}

/// The API address to use and where it came from.
#[derive(Debug, Clone)]
pub struct Host {
    pub url: String,
    pub source: HostSource,
}

/// What to print and the exit code.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Outcome {
    pub fn print(stdout: impl Into<String>) -> Outcome {
        Outcome {
            stdout: stdout.into(),
            ..Outcome::default()
        }
    }

    /// A handled error: `message` and a newline on stderr, exit 1. Most reference messages
    /// end in their own newline, which leaves an empty line after them.
    pub fn fail(message: impl AsRef<str>) -> Outcome {
        Outcome {
            stderr: format!("{}\n", message.as_ref()),
            code: 1,
            ..Outcome::default()
        }
    }

    /// A handled error shown after a help page.
    pub fn fail_with_help(page: String, message: impl AsRef<str>) -> Outcome {
        Outcome {
            stdout: page,
            ..Outcome::fail(message)
        }
    }
}
