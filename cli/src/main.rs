//! `toxi`: the command-line client for toxi and Toxiproxy, a drop-in replacement for
//! `toxiproxy-cli` 2.12 (same commands, flags, output bytes and exit codes), with a few
//! extras that scripts never see: `-o json`, `help toxics`, `completions`, flags after the
//! proxy name, and hints on a terminal.

mod app;
mod args;
mod catalog;
mod commands;
mod completions;
mod context;
mod help;
mod live;
mod output;
mod tabwriter;

use std::io::{IsTerminal, Write};
use std::path::Path;

/// The name help pages use: the file name the program was started as (`toxi`, or
/// `toxiproxy-cli` through a link of that name).
fn program_name(argv0: Option<&std::ffi::OsStr>) -> String {
    let name = argv0
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.strip_suffix(".exe").unwrap_or(&name).to_string();
    if name.is_empty() {
        "toxi".to_string()
    } else {
        name
    }
}

fn main() {
    let mut argv = std::env::args_os();
    let prog = program_name(argv.next().as_deref());
    let args: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
    let env = context::Env {
        prog,
        toxiproxy_url: std::env::var("TOXIPROXY_URL").ok(),
        stdout_tty: std::io::stdout().is_terminal(),
        stderr_tty: std::io::stderr().is_terminal(),
    };
    let outcome = app::run(&env, &args);
    // A closed pipe (`toxi list | head -1`) is not an error worth reporting.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(outcome.stdout.as_bytes());
    let _ = stdout.flush();
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(outcome.stderr.as_bytes());
    let _ = stderr.flush();
    std::process::exit(outcome.code);
}
