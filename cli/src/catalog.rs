//! The command tree of `toxiproxy-cli` 2.12: names, aliases, flags and the texts its help
//! pages are built from. `{prog}` in a text stands for the program name.

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// `-x value`, `-x=value`; the last one wins.
    Str,
    /// `-x`, `-x=true|false`; never takes the next argument.
    Bool,
    /// `-x value`, repeatable; each value is also split at commas.
    Slice,
}

/// One flag: its names (the first is canonical), kind and help line.
#[derive(Debug)]
pub struct FlagDef {
    pub names: &'static [&'static str],
    pub kind: FlagKind,
    /// The flag's line in OPTIONS, `<names>\t<usage>`, or "" for a flag help does not show.
    pub help: &'static str,
}

impl FlagDef {
    pub fn canonical(&self) -> &'static str {
        self.names[0]
    }
}

/// What a command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    Inspect,
    Create,
    Toggle,
    Delete,
    ToxicAdd,
    ToxicUpdate,
    ToxicRemove,
    Completions,
    Connections,
    Kill,
    Events,
}

/// A command that runs an action (every command but `toxic` and `help`).
#[derive(Debug)]
pub struct CommandDef {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// The urfave `Usage` text: may hold tabs and newlines, which shape the help layout.
    pub usage: &'static str,
    /// Shown after `[command options]` in USAGE.
    pub args_usage: &'static str,
    /// Flags shown in OPTIONS, in order, before `--help`; then hidden extension flags.
    pub flags: &'static [FlagDef],
    pub action: Action,
    /// Commands that `toxiproxy-cli` does not have; never listed in its help pages.
    pub extension: bool,
}

impl CommandDef {
    pub fn matches(&self, word: &str) -> bool {
        self.name == word || self.aliases.contains(&word)
    }

    /// `name, alias, ...` as help pages list it.
    pub fn names(&self) -> String {
        let mut s = self.name.to_string();
        for a in self.aliases {
            s.push_str(", ");
            s.push_str(a);
        }
        s
    }
}

pub const HELP_FLAG: FlagDef = FlagDef {
    names: &["help"],
    kind: FlagKind::Bool,
    help: "--help\tshow help (default: false)",
};

/// `-o json` for `list` and `inspect`: not in the reference, so not in its help pages.
const OUTPUT_FLAG: FlagDef = FlagDef {
    names: &["output", "o"],
    kind: FlagKind::Str,
    help: "",
};

pub const GLOBAL_FLAGS: &[FlagDef] = &[
    FlagDef {
        names: &["host", "h"],
        kind: FlagKind::Str,
        help: "--host value, -h value\ttoxiproxy host to connect to (default: \"http://localhost:8474\") [$TOXIPROXY_URL]",
    },
    HELP_FLAG,
    FlagDef {
        names: &["version", "v"],
        kind: FlagKind::Bool,
        help: "--version, -v\tprint the version",
    },
];

pub const APP_USAGE: &str = "Simulate network and system conditions";

/// The `help` command as help pages list it.
pub const HELP_NAMES: &str = "help, h";
pub const HELP_USAGE: &str = "Shows a list of commands or help for one command";

pub const TOXIC_NAME: &str = "toxic";
pub const TOXIC_ALIASES: &[&str] = &["t"];
pub const TOXIC_USAGE: &str = "\tadd, remove or update a toxic\n\t\tusage: see '{prog} toxic'\n";

/// The `toxic` command's DESCRIPTION, as the reference prints it (it lacks `limit_data`).
pub const TOXIC_DESCRIPTION: &str = "
  Default Toxics:
  latency:    delay all data +/- jitter
              latency=<ms>,jitter=<ms>

  bandwidth:  limit to max kb/s
              rate=<KB/s>

  slow_close: delay from closing
              delay=<ms>

  timeout:    stop all data and close after timeout
              timeout=<ms>

  reset_peer: simulate TCP RESET (Connection reset by peer) on the connections by closing
              the stub Input immediately or after a timeout
              timeout=<ms>

  slicer:     slice data into bits with optional delay
              average_size=<bytes>,size_variation=<bytes>,delay=<microseconds>

  toxic add:
    usage: {prog} toxic add --type <toxicType> [--downstream|--upstream] \\
            --toxicName <toxicName> [--toxicity <float>] \\
            --attribute <key=value> [--attribute <key2=value2>] <proxyName>


    example: {prog} toxic add -t latency -n myToxic -a latency=100 -a jitter=50 myProxy

  toxic update:
    usage: {prog} toxic update --toxicName <toxicName> [--toxicity <float>] \\
            --attribute <key1=value1> [--attribute <key2=value2>] <proxyName>

    example: {prog} toxic update -n myToxic -a jitter=25 myProxy

  toxic delete:
    usage: {prog} toxic delete --toxicName <toxicName> <proxyName>

    example: {prog} toxic delete -n myToxic myProxy
";

pub const COMMANDS: &[CommandDef] = &[
    CommandDef {
        name: "list",
        aliases: &["l", "li", "ls"],
        usage: "list all proxies\n\tusage: '{prog} list'\n",
        args_usage: "",
        flags: &[OUTPUT_FLAG],
        action: Action::List,
        extension: false,
    },
    CommandDef {
        name: "inspect",
        aliases: &["i", "ins"],
        usage: "inspect a single proxy\n\tusage: '{prog} inspect <proxyName>'\n",
        args_usage: "",
        flags: &[OUTPUT_FLAG],
        action: Action::Inspect,
        extension: false,
    },
    CommandDef {
        name: "create",
        aliases: &["c", "new"],
        usage: "create a new proxy\n\tusage: '{prog} create --listen <addr> --upstream <addr> <proxyName>'\n",
        args_usage: "",
        flags: &[
            FlagDef {
                names: &["listen", "l"],
                kind: FlagKind::Str,
                help: "--listen value, -l value\tproxy will listen on this address",
            },
            FlagDef {
                names: &["upstream", "u"],
                kind: FlagKind::Str,
                help: "--upstream value, -u value\tproxy will forward to this address",
            },
            // toxi's own (`tcp` or `http`): not in the reference, so not in its help page.
            FlagDef {
                names: &["protocol"],
                kind: FlagKind::Str,
                help: "",
            },
        ],
        action: Action::Create,
        extension: false,
    },
    CommandDef {
        name: "toggle",
        aliases: &["tog"],
        usage: "\ttoggle enabled status on a proxy\n\t\tusage: '{prog} toggle <proxyName>'\n",
        args_usage: "",
        flags: &[],
        action: Action::Toggle,
        extension: false,
    },
    CommandDef {
        name: "delete",
        aliases: &["d"],
        usage: "\tdelete a proxy\n\t\tusage: '{prog} delete <proxyName>'\n",
        args_usage: "",
        flags: &[],
        action: Action::Delete,
        extension: false,
    },
    CommandDef {
        name: "completions",
        aliases: &[],
        usage: "print a shell completion script (bash, zsh or fish)",
        args_usage: "bash|zsh|fish",
        flags: &[],
        action: Action::Completions,
        extension: true,
    },
    CommandDef {
        name: "connections",
        aliases: &["conns"],
        usage: "list a proxy's open connections (-o json for JSON)",
        args_usage: "<proxyName> [-o json]",
        flags: &[OUTPUT_FLAG],
        action: Action::Connections,
        extension: true,
    },
    CommandDef {
        name: "kill",
        aliases: &[],
        usage: "close one connection of a proxy (FIN, or RST with --reset)",
        args_usage: "<proxyName> <connectionId> [--reset]",
        flags: &[FlagDef {
            names: &["reset"],
            kind: FlagKind::Bool,
            help: "",
        }],
        action: Action::Kill,
        extension: true,
    },
    CommandDef {
        name: "events",
        aliases: &[],
        usage: "follow the server's events, one line each (-o json for JSON)",
        args_usage: "[-o json]",
        flags: &[OUTPUT_FLAG],
        action: Action::Events,
        extension: true,
    },
];

const TOXIC_NAME_FLAG: FlagDef = FlagDef {
    names: &["toxicName", "n"],
    kind: FlagKind::Str,
    help: "--toxicName value, -n value\tname of the toxic",
};

const TOXICITY_FLAG: FlagDef = FlagDef {
    names: &["toxicity", "tox"],
    kind: FlagKind::Str,
    help: "--toxicity value, --tox value\ttoxicity of toxic should be a float between 0 and 1 (default: 1.0)",
};

const ATTRIBUTE_FLAG: FlagDef = FlagDef {
    names: &["attribute", "a"],
    kind: FlagKind::Slice,
    help: "--attribute value, -a value [ --attribute value, -a value ]\ttoxic attribute in key=value format",
};

// `--after D --for D --every D`: a toxic's schedule (toxi's own, so hidden from the
// reference's help pages; `toxi help toxics` documents them).
const AFTER_FLAG: FlagDef = FlagDef {
    names: &["after"],
    kind: FlagKind::Str,
    help: "",
};
const FOR_FLAG: FlagDef = FlagDef {
    names: &["for"],
    kind: FlagKind::Str,
    help: "",
};
const EVERY_FLAG: FlagDef = FlagDef {
    names: &["every"],
    kind: FlagKind::Str,
    help: "",
};

pub const TOXIC_COMMANDS: &[CommandDef] = &[
    CommandDef {
        name: "add",
        aliases: &["a"],
        usage: "add a new toxic",
        args_usage: "<proxyName>",
        flags: &[
            TOXIC_NAME_FLAG,
            FlagDef {
                names: &["type", "t"],
                kind: FlagKind::Str,
                help: "--type value, -t value\ttype of toxic",
            },
            TOXICITY_FLAG,
            ATTRIBUTE_FLAG,
            FlagDef {
                names: &["upstream", "u"],
                kind: FlagKind::Bool,
                help: "--upstream, -u\tadd toxic to upstream (default: false)",
            },
            FlagDef {
                names: &["downstream", "d"],
                kind: FlagKind::Bool,
                help: "--downstream, -d\tadd toxic to downstream (default: true)",
            },
            AFTER_FLAG,
            FOR_FLAG,
            EVERY_FLAG,
        ],
        action: Action::ToxicAdd,
        extension: false,
    },
    CommandDef {
        name: "update",
        aliases: &["u"],
        usage: "update an enabled toxic",
        args_usage: "<proxyName>",
        flags: &[
            TOXIC_NAME_FLAG,
            TOXICITY_FLAG,
            ATTRIBUTE_FLAG,
            AFTER_FLAG,
            FOR_FLAG,
            EVERY_FLAG,
        ],
        action: Action::ToxicUpdate,
        extension: false,
    },
    CommandDef {
        name: "remove",
        aliases: &["r", "delete", "d"],
        usage: "remove an enabled toxic",
        args_usage: "<proxyName>",
        flags: &[TOXIC_NAME_FLAG],
        action: Action::ToxicRemove,
        extension: false,
    },
];

pub fn find_command(word: &str) -> Option<&'static CommandDef> {
    COMMANDS.iter().find(|c| c.matches(word))
}

pub fn find_toxic_command(word: &str) -> Option<&'static CommandDef> {
    TOXIC_COMMANDS.iter().find(|c| c.matches(word))
}

pub fn is_toxic(word: &str) -> bool {
    word == TOXIC_NAME || TOXIC_ALIASES.contains(&word)
}

pub fn is_help(word: &str) -> bool {
    word == "help" || word == "h"
}
