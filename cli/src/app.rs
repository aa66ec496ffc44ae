//! Command-line dispatch: global flags, the command tree, help topics and usage errors, in
//! the order urfave/cli v2 applies them for `toxiproxy-cli`.

use crate::args::{self, FlagError, Mode, Parsed};
use crate::catalog::{
    self, find_command, find_toxic_command, is_help, is_toxic, Action, CommandDef, FlagDef,
    GLOBAL_FLAGS, HELP_FLAG,
};
use crate::commands;
use crate::context::{Env, Host, HostSource, Outcome, VERSION};
use crate::help::{self, Form};

impl Outcome {
    fn no_help_topic(word: &str) -> Outcome {
        Outcome {
            stderr: format!("No help topic for '{word}'\n"),
            code: 3,
            ..Outcome::default()
        }
    }

    /// `Incorrect Usage: <error>`, an empty line and a help page, all on stdout, exit 0.
    fn incorrect_usage(error: &FlagError, page: String) -> Outcome {
        Outcome::print(format!("Incorrect Usage: {error}\n\n{page}"))
    }
}

/// Runs the command line `args` (without the program name).
pub fn run(env: &Env, args: &[String]) -> Outcome {
    let globals: Vec<&FlagDef> = GLOBAL_FLAGS.iter().collect();
    let parsed = match args::parse(&globals, args, Mode::Stop) {
        Ok(p) => p,
        Err(e) => return Outcome::incorrect_usage(&e, help::main_page(&env.prog, VERSION)),
    };
    let host = resolve_host(env, &parsed);
    if parsed.bool("help") {
        return help_topic(env, &parsed.positionals);
    }
    if parsed.bool("version") {
        return Outcome::print(format!("{} version {VERSION}\n", env.prog));
    }
    let Some((word, rest)) = parsed.positionals.split_first() else {
        return main_help(env);
    };
    if is_help(word) {
        help_topic(env, rest)
    } else if is_toxic(word) {
        toxic(env, &host, rest)
    } else if let Some(cmd) = find_command(word) {
        leaf(env, &host, None, cmd, rest)
    } else {
        Outcome::no_help_topic(word)
    }
}

fn resolve_host(env: &Env, parsed: &Parsed) -> Host {
    if parsed.has_string("host") {
        Host {
            url: parsed.string("host").to_string(),
            source: HostSource::Flag,
        }
    } else if let Some(url) = env.toxiproxy_url.as_ref().filter(|u| !u.is_empty()) {
        Host {
            url: url.clone(),
            source: HostSource::Environment,
        }
    } else {
        Host {
            url: toxi::client::DEFAULT_ENDPOINT.to_string(),
            source: HostSource::Default,
        }
    }
}

fn main_help(env: &Env) -> Outcome {
    let mut page = help::main_page(&env.prog, VERSION);
    if env.stdout_tty {
        page.push_str(&help::main_page_extras(&env.prog));
    }
    Outcome::print(page)
}

fn toxic_page(env: &Env) -> String {
    with_toxic_types(env, help::toxic_page(&env.prog))
}

/// On a terminal, the toxic types and their attributes follow the `toxic` pages.
fn with_toxic_types(env: &Env, mut page: String) -> String {
    if env.stdout_tty {
        page.push('\n');
        page.push_str(&help::toxic_types(&env.prog));
    }
    page
}

/// `help [topic...]`, `--help [topic...]`.
fn help_topic(env: &Env, args: &[String]) -> Outcome {
    let prog = env.prog.as_str();
    let Some(word) = args.first() else {
        return main_help(env);
    };
    if is_toxic(word) {
        if args.len() == 1 {
            return Outcome::print(with_toxic_types(env, help::toxic_topic_page(prog)));
        }
        return toxic_help_topic(env, &args[1..]);
    }
    if is_help(word) {
        return Outcome::print(help::help_page(prog));
    }
    if word == "toxics" {
        return Outcome::print(help::toxic_types(prog));
    }
    match find_command(word) {
        Some(cmd) => Outcome::print(leaf_page(env, None, cmd, Form::Normal)),
        None => Outcome::no_help_topic(word),
    }
}

/// `toxic help [subcommand]`, `help toxic [subcommand]`.
fn toxic_help_topic(env: &Env, args: &[String]) -> Outcome {
    match args.first() {
        None => Outcome::print(toxic_page(env)),
        Some(word) if is_help(word) => Outcome::print(help::help_page(&env.prog)),
        Some(word) => match find_toxic_command(word) {
            Some(cmd) => {
                Outcome::print(leaf_page(env, Some(catalog::TOXIC_NAME), cmd, Form::Normal))
            }
            None => Outcome::no_help_topic(word),
        },
    }
}

/// `toxic ...`: its own flags stop at the subcommand.
fn toxic(env: &Env, host: &Host, args: &[String]) -> Outcome {
    let parsed = match args::parse(&[&HELP_FLAG], args, Mode::Stop) {
        Ok(p) => p,
        Err(e) => return Outcome::incorrect_usage(&e, help::toxic_page(&env.prog)),
    };
    if parsed.bool("help") {
        return Outcome::print(toxic_page(env));
    }
    let Some((word, rest)) = parsed.positionals.split_first() else {
        return Outcome::print(toxic_page(env));
    };
    if is_help(word) {
        return toxic_help_topic(env, rest);
    }
    match find_toxic_command(word) {
        Some(cmd) => leaf(env, host, Some(catalog::TOXIC_NAME), cmd, rest),
        None => Outcome::no_help_topic(word),
    }
}

/// The help page of a leaf command, with toxi's extras on a terminal for `--help`.
fn leaf_page(env: &Env, parent: Option<&str>, cmd: &CommandDef, form: Form) -> String {
    let prog = env.prog.as_str();
    if cmd.extension {
        return help::extension_page(prog, cmd);
    }
    let mut page = help::command_page(prog, parent, cmd, form);
    if env.stdout_tty && form == Form::Normal {
        match cmd.action {
            Action::ToxicAdd => {
                page.push('\n');
                page.push_str(&help::toxic_types(prog));
            }
            Action::List | Action::Inspect => page.push_str(&help::output_flag_extras()),
            _ => {}
        }
    }
    page
}

/// A command that does something: parse its flags (before or after the proxy name), handle
/// `--help`, then run it.
fn leaf(
    env: &Env,
    host: &Host,
    parent: Option<&str>,
    cmd: &CommandDef,
    args: &[String],
) -> Outcome {
    let mut flags: Vec<&FlagDef> = cmd.flags.iter().collect();
    flags.push(&HELP_FLAG);
    let parsed = match args::parse(&flags, args, Mode::Anywhere) {
        Ok(p) => p,
        Err(e) => return Outcome::incorrect_usage(&e, leaf_page(env, parent, cmd, Form::Error)),
    };
    if parsed.bool("help") {
        return Outcome::print(leaf_page(env, parent, cmd, Form::Normal));
    }
    let error_page = leaf_page(env, parent, cmd, Form::Error);
    commands::execute(env, host, cmd.action, &parsed, error_page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            prog: "toxiproxy-cli".to_string(),
            toxiproxy_url: None,
            stdout_tty: false,
            stderr_tty: false,
        }
    }

    fn run_args(s: &str) -> Outcome {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        run(&env(), &args)
    }

    #[test]
    fn no_arguments_and_help_print_the_main_page() {
        let page = help::main_page("toxiproxy-cli", VERSION);
        assert_eq!(run_args(""), Outcome::print(page.clone()));
        assert_eq!(run_args("--help"), Outcome::print(page.clone()));
        assert_eq!(run_args("help"), Outcome::print(page.clone()));
        assert_eq!(run_args("-h x:1 h"), Outcome::print(page));
    }

    #[test]
    fn version() {
        assert_eq!(
            run_args("-v"),
            Outcome::print(format!("toxiproxy-cli version {VERSION}\n"))
        );
        assert_eq!(run_args("--version").code, 0);
    }

    #[test]
    fn unknown_command_and_flag() {
        let o = run_args("-h x bogus");
        assert_eq!(
            (o.code, o.stdout.as_str(), o.stderr.as_str()),
            (3, "", "No help topic for 'bogus'\n")
        );
        let o = run_args("--bogus list");
        assert_eq!(o.code, 0);
        assert!(o
            .stdout
            .starts_with("Incorrect Usage: flag provided but not defined: -bogus\n\nNAME:\n"));
        let o = run_args("toxic bogus");
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (3, "No help topic for 'bogus'\n")
        );
        let o = run_args("help bogus");
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (3, "No help topic for 'bogus'\n")
        );
    }

    #[test]
    fn host_after_the_command_is_a_help_request() {
        let o = run_args("list -h http://x:1");
        assert_eq!(o.code, 0);
        assert!(o.stdout.starts_with("Incorrect Usage: flag: help requested\n\nNAME:\n   toxiproxy-cli list - list all proxies\n"));
        assert!(o.stdout.contains("\nCOMMANDS:\n   help, h  "));
    }

    #[test]
    fn help_topics() {
        let create = run_args("help create");
        assert_eq!(create, run_args("create --help"));
        assert!(!create.stdout.contains("COMMANDS:"));
        // `help toxic` stops after DESCRIPTION, as toxiproxy-cli's does; `toxic` goes on
        // with COMMANDS and OPTIONS.
        let topic = run_args("help toxic");
        let page = run_args("toxic");
        assert_eq!(topic.code, 0);
        assert!(topic
            .stdout
            .ends_with("toxic delete -n myToxic myProxy\n\n"));
        assert!(!topic.stdout.contains("COMMANDS:") && !topic.stdout.contains("OPTIONS:"));
        let head = page.stdout.split("\n\nCOMMANDS:").next().unwrap();
        assert_eq!(topic.stdout, format!("{head}\n"));
        assert_eq!(run_args("help t"), topic);
        assert_eq!(run_args("toxic"), run_args("toxic help"));
        assert_eq!(run_args("toxic"), run_args("t --help"));
        assert_eq!(run_args("toxic add --help"), run_args("toxic help add"));
        assert_eq!(run_args("toxic add --help"), run_args("help toxic a"));
        assert!(run_args("help toxics").stdout.contains("limit_data"));
        assert!(run_args("help completions")
            .stdout
            .contains("bash|zsh|fish"));
    }

    #[test]
    fn argument_errors_come_before_any_request() {
        // The host is unreachable on purpose: these fail before connecting.
        let o = run_args("-h 127.0.0.1:1 create -l 127.0.0.1:0 -u x:1");
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (1, "Proxy name is required as the first argument.\n\n")
        );
        assert!(o.stdout.contains("\nCOMMANDS:\n"));
        let o = run_args("-h 127.0.0.1:1 create -u x:1 p");
        assert_eq!(o.stderr, "Required argument 'listen' was empty.\n\n");
        let o = run_args("-h 127.0.0.1:1 create -l x p");
        assert_eq!(o.stderr, "Required argument 'upstream' was empty.\n\n");
        let o = run_args("-h 127.0.0.1:1 toxic add chaos");
        assert_eq!(o.stderr, "Required argument 'type' was empty.\n\n");
        let o = run_args("-h 127.0.0.1:1 toxic add -t latency");
        assert_eq!(o.stderr, "Proxy name is missing.\n\n");
        let o = run_args("-h 127.0.0.1:1 toxic add -t latency -u -d chaos");
        assert_eq!(
            (o.stdout.as_str(), o.stderr.as_str()),
            (
                "",
                "Only one should be specified: upstream or downstream.\n\n"
            )
        );
        let o = run_args("-h 127.0.0.1:1 toxic add -t latency --tox 1.5 chaos");
        assert_eq!(o.stderr, "toxicity should be a float between 0 and 1.\n\n");
        let o = run_args("-h 127.0.0.1:1 toxic update --tox nan chaos");
        assert_eq!(o.stderr, "toxicity should be a float between 0 and 1.\n\n");
        let o = run_args("-h 127.0.0.1:1 toxic remove -n x");
        assert_eq!(o.stderr, "Proxy name is missing.\n\n");
        let o = run_args("-h 127.0.0.1:1 inspect");
        assert_eq!(
            o.stderr,
            "Proxy name is required as the first argument.\n\n"
        );
        let o = run_args("-h 127.0.0.1:1 list -o yaml");
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (1, "Unknown output format 'yaml': use text or json.\n\n")
        );
    }

    #[test]
    fn unreachable_server_messages() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = dead.local_addr().unwrap();
        drop(dead);
        let o = run_args(&format!("-h http://{addr} list"));
        assert_eq!(
            (o.code, o.stderr),
            (1, format!("Failed to retrieve proxies: fail to request: Get \"http://{addr}/proxies\": dial tcp {addr}: connect: connection refused\n"))
        );
        let o = run_args(&format!("-h http://{addr} inspect p"));
        assert_eq!(
            o.stderr,
            format!("Failed to retrieve proxy p: fail to request: Get \"http://{addr}/proxies/p\": dial tcp {addr}: connect: connection refused\n\n")
        );
        let mut tty = env();
        tty.stderr_tty = true;
        let o = run(&tty, &["-h".into(), format!("{addr}"), "ls".into()]);
        assert!(
            o.stderr.contains(&format!(
                "\nHint: nothing answered at http://{addr} (set with -h/--host)."
            )),
            "{}",
            o.stderr
        );
    }
}
