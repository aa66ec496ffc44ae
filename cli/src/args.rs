//! The CLI's flags: [`toxi::gocompat::flag`] (Go's `flag` rules, as urfave/cli uses them)
//! over the catalog's [`FlagDef`]s, collected by canonical name.
//!
//! [`Mode::Stop`] stops at the first positional argument, as Go does. [`Mode::Anywhere`]
//! keeps reading flags after positional arguments too, as `toxiproxy-cli` 2.1.4 did, so both
//! `create -l A -u B chaos` and `create chaos -l A -u B` work.

use std::collections::HashMap;

use toxi::gocompat::flag::{self, FlagSpec, Value};
pub use toxi::gocompat::flag::{FlagError, Mode};

use crate::catalog::{FlagDef, FlagKind};

impl FlagSpec for FlagDef {
    fn names(&self) -> &[&str] {
        self.names
    }
    fn is_bool(&self) -> bool {
        self.kind == FlagKind::Bool
    }
}

/// Parsed flags (by canonical name) and positional arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    strings: HashMap<&'static str, String>,
    bools: HashMap<&'static str, bool>,
    slices: HashMap<&'static str, Vec<String>>,
    pub positionals: Vec<String>,
}

impl Parsed {
    /// A string flag's value; "" when not given.
    pub fn string(&self, name: &str) -> &str {
        self.strings.get(name).map(String::as_str).unwrap_or("")
    }

    /// Whether a string flag was given at all (even as "").
    pub fn has_string(&self, name: &str) -> bool {
        self.strings.contains_key(name)
    }

    pub fn bool(&self, name: &str) -> bool {
        self.bools.get(name).copied().unwrap_or(false)
    }

    pub fn slice(&self, name: &str) -> &[String] {
        self.slices.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The first positional argument, or "" (urfave's `Args().First()`).
    pub fn first(&self) -> &str {
        self.positionals.first().map(String::as_str).unwrap_or("")
    }
}

/// Parses `args` against `flags`. In [`Mode::Stop`], the positionals are the first
/// non-flag argument and everything after it.
pub fn parse(flags: &[&FlagDef], args: &[String], mode: Mode) -> Result<Parsed, FlagError> {
    let given = flag::parse(flags, args, mode)?;
    let mut parsed = Parsed {
        positionals: given.positionals,
        ..Parsed::default()
    };
    for g in given.flags {
        let key = g.spec.canonical();
        match (g.value, g.spec.kind) {
            (Value::Bool(v), _) => {
                parsed.bools.insert(key, v);
            }
            (Value::Text(v), FlagKind::Slice) => {
                // urfave splits slice values at commas and trims each part.
                let list = parsed.slices.entry(key).or_default();
                list.extend(v.split(',').map(|p| p.trim().to_string()));
            }
            (Value::Text(v), _) => {
                parsed.strings.insert(key, v);
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{find_command, find_toxic_command, GLOBAL_FLAGS, HELP_FLAG};

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn flags_of(cmd: &'static crate::catalog::CommandDef) -> Vec<&'static FlagDef> {
        let mut v: Vec<&FlagDef> = cmd.flags.iter().collect();
        v.push(&HELP_FLAG);
        v
    }

    #[test]
    fn global_flags_stop_at_the_command() {
        let g: Vec<&FlagDef> = GLOBAL_FLAGS.iter().collect();
        let p = parse(&g, &argv("-h http://x:1 list -h y"), Mode::Stop).unwrap();
        assert_eq!(p.string("host"), "http://x:1");
        assert_eq!(p.positionals, argv("list -h y"));
        let p = parse(&g, &argv("--host=a -v"), Mode::Stop).unwrap();
        assert_eq!(p.string("host"), "a");
        assert!(p.bool("version"));
        assert_eq!(
            parse(&g, &argv("--bogus list"), Mode::Stop)
                .unwrap_err()
                .to_string(),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(
            parse(&g, &argv("-h"), Mode::Stop).unwrap_err().to_string(),
            "flag needs an argument: -h"
        );
        assert_eq!(
            parse(&g, &argv("--help=maybe"), Mode::Stop)
                .unwrap_err()
                .to_string(),
            "invalid boolean value \"maybe\" for -help: parse error"
        );
        assert_eq!(
            parse(&g, &argv("---x"), Mode::Stop)
                .unwrap_err()
                .to_string(),
            "bad flag syntax: ---x"
        );
    }

    #[test]
    fn command_flags_anywhere() {
        let create = flags_of(find_command("create").unwrap());
        let p = parse(
            &create,
            &argv("chaos -l 0.0.0.0:8080 -u localhost:9090"),
            Mode::Anywhere,
        )
        .unwrap();
        assert_eq!(p.first(), "chaos");
        assert_eq!(p.string("listen"), "0.0.0.0:8080");
        assert_eq!(p.string("upstream"), "localhost:9090");
        let p = parse(&create, &argv("-- -weird -l x"), Mode::Anywhere).unwrap();
        assert_eq!(p.positionals, argv("-weird -l x"));
        assert_eq!(
            parse(&create, &argv("-h x"), Mode::Anywhere).unwrap_err(),
            FlagError::HelpRequested
        );
    }

    #[test]
    fn toxic_add_flags() {
        let add = flags_of(find_toxic_command("add").unwrap());
        let p = parse(
            &add,
            &argv("--type latency --a latency=250 --upstream chaos"),
            Mode::Anywhere,
        )
        .unwrap();
        assert_eq!(p.string("type"), "latency");
        assert_eq!(p.slice("attribute"), ["latency=250"]);
        assert!(p.bool("upstream"));
        assert!(!p.bool("downstream"));
        assert_eq!(p.first(), "chaos");
        let p = parse(
            &add,
            &argv("-a a=1,b=2 -a c=3 --tox=0.5 -u=false p"),
            Mode::Anywhere,
        )
        .unwrap();
        assert_eq!(p.slice("attribute"), ["a=1", "b=2", "c=3"]);
        assert_eq!(p.string("toxicity"), "0.5");
        assert!(!p.bool("upstream"));
    }
}
