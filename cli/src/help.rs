//! Help pages, laid out byte for byte as urfave/cli v2.27 lays out `toxiproxy-cli`'s.
//!
//! Pages are built the way urfave's templates build them (usage texts keep their tabs and
//! newlines, continuation lines are indented by `wrap`), then aligned by
//! [`tabwriter::align`](crate::tabwriter::align). That is what gives the odd indentation of
//! `toggle`, `delete` and `toxic`, whose usage texts start with a tab.

use crate::catalog::{
    self, CommandDef, FlagDef, APP_USAGE, GLOBAL_FLAGS, HELP_FLAG, HELP_NAMES, HELP_USAGE,
    TOXIC_COMMANDS, TOXIC_DESCRIPTION, TOXIC_USAGE,
};
use crate::tabwriter;
use toxi::model::{AttrDef, Shown, ToxicDef};
use toxi::toxics::CATALOG;

/// Which of urfave's two command templates a page uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `<command> --help` and `help <command>`.
    Normal,
    /// Shown with an error or `Incorrect Usage`: it also lists the command's implicit
    /// `help` subcommand.
    Error,
}

fn fill(text: &str, prog: &str) -> String {
    text.replace("{prog}", prog)
}

/// urfave's `wrap`: continuation lines get `offset` spaces; empty lines stay empty.
fn wrap(input: &str, offset: usize) -> String {
    let pad = " ".repeat(offset);
    let mut out = String::with_capacity(input.len() + 32);
    for (i, line) in input.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(line);
    }
    out
}

/// A COMMANDS block: names padded to the longest plus 5, then the wrapped usage.
fn commands_block(entries: &[(String, String)]) -> String {
    let column = entries.iter().map(|(n, _)| n.len()).max().unwrap_or(0) + 5;
    let mut out = String::new();
    for (names, usage) in entries {
        out.push_str("\n   ");
        out.push_str(names);
        out.push_str(&" ".repeat(column.saturating_sub(names.len() + 3)));
        out.push_str(&wrap(usage, column));
    }
    out
}

fn flags_block(flags: &[&FlagDef]) -> String {
    let mut out = String::new();
    for flag in flags.iter().filter(|f| !f.help.is_empty()) {
        out.push_str("\n   ");
        out.push_str(&wrap(flag.help, 6));
    }
    out
}

fn name_section(help_name: &str, usage: &str) -> String {
    format!(
        "NAME:\n   {help_name} - {}",
        wrap(usage, help_name.len() + 6)
    )
}

/// The main page: `toxiproxy-cli`, `--help`, `help`.
pub fn main_page(prog: &str, version: &str) -> String {
    let mut entries: Vec<(String, String)> = catalog::COMMANDS
        .iter()
        .filter(|c| !c.extension)
        .map(|c| (c.names(), fill(c.usage, prog)))
        .collect();
    // The reference lists `toxic` after `delete`, then `help`.
    entries.push((
        format!(
            "{}, {}",
            catalog::TOXIC_NAME,
            catalog::TOXIC_ALIASES.join(", ")
        ),
        fill(TOXIC_USAGE, prog),
    ));
    entries.push((HELP_NAMES.to_string(), HELP_USAGE.to_string()));
    let mut page = format!(
        "{}\n\nUSAGE:\n   {prog} [global options] command [command options]\n\nVERSION:\n   {version}\n\nCOMMANDS:",
        name_section(prog, APP_USAGE)
    );
    page.push_str(&commands_block(&entries));
    page.push_str("\n\nGLOBAL OPTIONS:");
    page.push_str(&flags_block(&GLOBAL_FLAGS.iter().collect::<Vec<_>>()));
    page.push('\n');
    tabwriter::align(&page, 1, 2)
}

/// The page of a leaf command; `parent` is `Some("toxic")` for toxic subcommands.
pub fn command_page(prog: &str, parent: Option<&str>, cmd: &CommandDef, form: Form) -> String {
    let help_name = match parent {
        Some(p) => format!("{prog} {p} {}", cmd.name),
        None => format!("{prog} {}", cmd.name),
    };
    let mut page = name_section(&help_name, &fill(cmd.usage, prog));
    page.push_str("\n\nUSAGE:\n   ");
    page.push_str(&help_name);
    page.push_str(" [command options]");
    if !cmd.args_usage.is_empty() {
        page.push(' ');
        page.push_str(cmd.args_usage);
    }
    if form == Form::Error {
        page.push_str("\n\nCOMMANDS:");
        page.push_str(&commands_block(&[(
            HELP_NAMES.to_string(),
            HELP_USAGE.to_string(),
        )]));
    }
    page.push_str("\n\nOPTIONS:");
    let mut flags: Vec<&FlagDef> = cmd.flags.iter().collect();
    flags.push(&HELP_FLAG);
    page.push_str(&flags_block(&flags));
    page.push('\n');
    tabwriter::align(&page, 1, 2)
}

/// The `toxic` page (`toxic` alone, `toxic --help`, `toxic help`).
pub fn toxic_page(prog: &str) -> String {
    let mut page = toxic_head(prog);
    page.push_str("\n\nCOMMANDS:");
    let mut entries: Vec<(String, String)> = TOXIC_COMMANDS
        .iter()
        .map(|c| (c.names(), c.usage.to_string()))
        .collect();
    entries.push((HELP_NAMES.to_string(), HELP_USAGE.to_string()));
    page.push_str(&commands_block(&entries));
    page.push_str("\n\nOPTIONS:");
    page.push_str(&flags_block(&[&HELP_FLAG]));
    page.push('\n');
    tabwriter::align(&page, 1, 2)
}

/// `help toxic`: as the reference prints it, the `toxic` page stops after DESCRIPTION.
pub fn toxic_topic_page(prog: &str) -> String {
    let mut page = toxic_head(prog);
    page.push('\n');
    tabwriter::align(&page, 1, 2)
}

/// NAME, USAGE and DESCRIPTION of the `toxic` page.
fn toxic_head(prog: &str) -> String {
    let help_name = format!("{prog} {}", catalog::TOXIC_NAME);
    let mut page = name_section(&help_name, &fill(TOXIC_USAGE, prog));
    page.push_str("\n\nUSAGE:\n   ");
    page.push_str(&help_name);
    page.push_str(" [command options]\n\nDESCRIPTION:\n   ");
    page.push_str(&wrap(&fill(TOXIC_DESCRIPTION, prog), 3));
    page
}

/// The page of the `help` command itself (`help help`).
pub fn help_page(prog: &str) -> String {
    let help_name = format!("{prog} help");
    let page = format!(
        "{}\n\nUSAGE:\n   {help_name} [command]\n",
        name_section(&help_name, HELP_USAGE)
    );
    tabwriter::align(&page, 1, 2)
}

/// An attribute as `name=<unit>` and what it means (its help, and its default when that
/// is not zero).
fn attribute_doc(attr: &AttrDef) -> (String, String) {
    let mut meaning = attr.help.to_string();
    if attr.shown == Shown::Always && !attr.default.is_zero() {
        meaning.push_str(&format!(" (default {})", attr.default));
    }
    (format!("{}=<{}>", attr.name, attr.unit), meaning)
}

/// toxi's own reference of toxic types (`help toxics`, and after `toxic add --help` on a
/// terminal).
pub fn toxic_types(prog: &str) -> String {
    let types: Vec<&ToxicDef> = CATALOG.iter().map(|t| t.def).collect();
    let type_width = types.iter().map(|t| t.name.len()).max().unwrap_or(0) + 2;
    let attr_width = types
        .iter()
        .flat_map(|t| t.attrs.iter().map(|a| attribute_doc(a).0.len()))
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = String::from(
        "TOXIC TYPES (--type/-t) AND THEIR ATTRIBUTES (--attribute/-a key=value):\n   Every attribute defaults to 0. Times are in milliseconds unless noted.\n\n",
    );
    for def in &types {
        let (name, description) = (def.name, def.summary);
        out.push_str(&format!("   {name:type_width$}{description}\n"));
        for (attribute, meaning) in def.attrs.iter().map(attribute_doc) {
            out.push_str(&format!(
                "   {:type_width$}{attribute:attr_width$}{meaning}\n",
                ""
            ));
        }
    }
    let rest = "
STREAMS:
   --downstream, -d\tserver -> client (responses); the default
   --upstream, -u\tclient -> server (requests)

TOXICITY:
   --toxicity, --tox\tprobability that the toxic applies to a connection, 0 to 1 (default 1.0)

SCHEDULE (toxic add and update; durations like 250ms, 30s, 1m30s, or milliseconds):
   --after D\tpass data untouched until D after the toxic is added (or scheduled)
   --for D\tact for D; without --every, the toxic then removes itself
   --every D\trepeat: act for the --for part of every period D (a flapping link)

EXAMPLES:
   {prog} toxic add -t latency -a latency=250 -a jitter=50 myProxy
   {prog} toxic add -t bandwidth --upstream -a rate=100 myProxy
   {prog} toxic add -t timeout -n blackhole -a timeout=0 myProxy
   {prog} toxic update -n latency_downstream -a latency=500 myProxy
   {prog} toxic remove -n blackhole myProxy
   {prog} toxic add -t latency -a latency=250 --for 5m myProxy
   {prog} toxic add -t timeout -n flap -a timeout=0 --after 10s --for 2s --every 30s myProxy
";
    out.push_str(&tabwriter::align(&fill(rest, prog), 1, 2));
    out
}

/// The page of an extension command such as `completions`.
pub fn extension_page(prog: &str, cmd: &CommandDef) -> String {
    let help_name = format!("{prog} {}", cmd.name);
    let mut page = name_section(&help_name, &fill(cmd.usage, prog));
    page.push_str("\n\nUSAGE:\n   ");
    page.push_str(&help_name);
    if !cmd.args_usage.is_empty() {
        page.push(' ');
        page.push_str(cmd.args_usage);
    }
    if cmd.action == catalog::Action::Completions {
        page.push_str(&fill(
            "\n\nEXAMPLES:\n   {prog} completions bash > /etc/bash_completion.d/{prog}\n   {prog} completions zsh > \"${fpath[1]}/_{prog}\"\n   {prog} completions fish > ~/.config/fish/completions/{prog}.fish",
            prog,
        ));
    }
    page.push('\n');
    tabwriter::align(&page, 1, 2)
}

/// Extra lines for the main page on a terminal: what toxi adds to the reference.
pub fn main_page_extras(prog: &str) -> String {
    let text = "
TOXI EXTRAS:
   {prog} list -o json\tproxies as JSON (also: inspect -o json <proxyName>)
   {prog} help toxics\tevery toxic type with its attributes and units
   {prog} completions bash|zsh|fish\tprint a shell completion script
   flags after the proxy name\te.g. create chaos -l 127.0.0.1:8080 -u localhost:9090
";
    tabwriter::align(&fill(text, prog), 1, 2)
}

/// Extra lines for `list --help` / `inspect --help` on a terminal.
pub fn output_flag_extras() -> String {
    tabwriter::align(
        "\nTOXI EXTRAS:\n   --output value, -o value\toutput format: text (default) or json\n",
        1,
        2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{find_command, find_toxic_command};

    const P: &str = "toxiproxy-cli";

    #[test]
    fn main_page_matches_reference() {
        let want = "NAME:
   toxiproxy-cli - Simulate network and system conditions

USAGE:
   toxiproxy-cli [global options] command [command options]

VERSION:
   2.12.0

COMMANDS:
   list, l, li, ls  list all proxies
                      usage: 'toxiproxy-cli list'

   inspect, i, ins  inspect a single proxy
                      usage: 'toxiproxy-cli inspect <proxyName>'

   create, c, new   create a new proxy
                      usage: 'toxiproxy-cli create --listen <addr> --upstream <addr> <proxyName>'

   toggle, tog        toggle enabled status on a proxy
                        usage: 'toxiproxy-cli toggle <proxyName>'

   delete, d          delete a proxy
                        usage: 'toxiproxy-cli delete <proxyName>'

   toxic, t           add, remove or update a toxic
                        usage: see 'toxiproxy-cli toxic'

   help, h          Shows a list of commands or help for one command

GLOBAL OPTIONS:
   --host value, -h value  toxiproxy host to connect to (default: \"http://localhost:8474\") [$TOXIPROXY_URL]
   --help                  show help (default: false)
   --version, -v           print the version
";
        assert_eq!(main_page(P, "2.12.0"), want);
    }

    #[test]
    fn create_pages_match_reference() {
        let create = find_command("create").unwrap();
        let normal = "NAME:
   toxiproxy-cli create - create a new proxy
                            usage: 'toxiproxy-cli create --listen <addr> --upstream <addr> <proxyName>'


USAGE:
   toxiproxy-cli create [command options]

OPTIONS:
   --listen value, -l value    proxy will listen on this address
   --upstream value, -u value  proxy will forward to this address
   --help                      show help (default: false)
";
        assert_eq!(command_page(P, None, create, Form::Normal), normal);
        let error = normal.replace(
            "\n\nOPTIONS:",
            "\n\nCOMMANDS:\n   help, h  Shows a list of commands or help for one command\n\nOPTIONS:",
        );
        assert_eq!(command_page(P, None, create, Form::Error), error);
    }

    #[test]
    fn tab_led_usages_get_the_reference_indentation() {
        let toggle = command_page(P, None, find_command("tog").unwrap(), Form::Error);
        assert!(toggle.starts_with(
            "NAME:\n   toxiproxy-cli toggle -   toggle enabled status on a proxy\n                              usage: 'toxiproxy-cli toggle <proxyName>'\n\n\nUSAGE:\n   toxiproxy-cli toggle [command options]\n\nCOMMANDS:"
        ));
        let list = command_page(P, None, find_command("ls").unwrap(), Form::Error);
        assert_eq!(
            list,
            "NAME:\n   toxiproxy-cli list - list all proxies\n                          usage: 'toxiproxy-cli list'\n\n\nUSAGE:\n   toxiproxy-cli list [command options]\n\nCOMMANDS:\n   help, h  Shows a list of commands or help for one command\n\nOPTIONS:\n   --help  show help (default: false)\n"
        );
        let inspect = command_page(P, None, find_command("inspect").unwrap(), Form::Error);
        assert!(inspect.contains(
            "\n                             usage: 'toxiproxy-cli inspect <proxyName>'\n"
        ));
    }

    #[test]
    fn shorter_program_names_shift_only_the_name_section() {
        let page = command_page("toxi", None, find_command("create").unwrap(), Form::Normal);
        assert!(page.starts_with(
            "NAME:\n   toxi create - create a new proxy\n                   usage: 'toxi create"
        ));
    }

    #[test]
    fn toxic_add_page_matches_reference() {
        let add = find_toxic_command("add").unwrap();
        let want = "NAME:
   toxiproxy-cli toxic add - add a new toxic

USAGE:
   toxiproxy-cli toxic add [command options] <proxyName>

OPTIONS:
   --toxicName value, -n value                                  name of the toxic
   --type value, -t value                                       type of toxic
   --toxicity value, --tox value                                toxicity of toxic should be a float between 0 and 1 (default: 1.0)
   --attribute value, -a value [ --attribute value, -a value ]  toxic attribute in key=value format
   --upstream, -u                                               add toxic to upstream (default: false)
   --downstream, -d                                             add toxic to downstream (default: true)
   --help                                                       show help (default: false)
";
        assert_eq!(command_page(P, Some("toxic"), add, Form::Normal), want);
        let remove = find_toxic_command("d").unwrap();
        assert_eq!(
            command_page(P, Some("toxic"), remove, Form::Error),
            "NAME:\n   toxiproxy-cli toxic remove - remove an enabled toxic\n\nUSAGE:\n   toxiproxy-cli toxic remove [command options] <proxyName>\n\nCOMMANDS:\n   help, h  Shows a list of commands or help for one command\n\nOPTIONS:\n   --toxicName value, -n value  name of the toxic\n   --help                       show help (default: false)\n"
        );
    }

    #[test]
    fn toxic_page_matches_reference() {
        let page = toxic_page(P);
        assert!(page.starts_with(
            "NAME:\n   toxiproxy-cli toxic -   add, remove or update a toxic\n                             usage: see 'toxiproxy-cli toxic'\n\n\nUSAGE:\n   toxiproxy-cli toxic [command options]\n\nDESCRIPTION:\n   \n     Default Toxics:\n     latency:    delay all data +/- jitter\n                 latency=<ms>,jitter=<ms>\n\n"
        ));
        assert!(page.ends_with(
            "       example: toxiproxy-cli toxic delete -n myToxic myProxy\n\n\nCOMMANDS:\n   add, a                add a new toxic\n   update, u             update an enabled toxic\n   remove, r, delete, d  remove an enabled toxic\n   help, h               Shows a list of commands or help for one command\n\nOPTIONS:\n   --help  show help (default: false)\n"
        ));
        assert!(page.contains(
            "       usage: toxiproxy-cli toxic add --type <toxicType> [--downstream|--upstream] \\\n               --toxicName <toxicName> [--toxicity <float>] \\\n"
        ));
    }

    #[test]
    fn wrap_pads_continuations_only() {
        assert_eq!(wrap("a\n\tb\n", 4), "a\n    \tb\n");
        assert_eq!(wrap("", 4), "");
    }
}
