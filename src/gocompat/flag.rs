//! Command-line flags with the rules of Go's `flag` package, for `toxi-server` (as
//! `toxiproxy-server` parses them) and the `toxi` CLI (as urfave/cli, on top of `flag`,
//! parses them for `toxiproxy-cli`).
//!
//! * `-x` and `--x` are the same flag; a value follows as `-x=value` or as the next
//!   argument (a bool flag takes `=value` or nothing).
//! * `--` ends the flags; a lone `-` is a positional argument.
//! * An undefined `-h` or `-help` is a help request (`flag: help requested`).
//!
//! [`Mode::Stop`] stops at the first positional argument, as Go does. [`Mode::Anywhere`]
//! keeps reading flags after positional arguments too.

use std::fmt;

/// Whether flags may follow positional arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stop,
    Anywhere,
}

/// A flag definition, as the parser needs to see it.
pub trait FlagSpec {
    /// Every name the flag answers to, without dashes.
    fn names(&self) -> &[&str];
    /// A bool flag takes no separate value argument.
    fn is_bool(&self) -> bool;
}

impl<S: FlagSpec + ?Sized> FlagSpec for &S {
    fn names(&self) -> &[&str] {
        (**self).names()
    }
    fn is_bool(&self) -> bool {
        (**self).is_bool()
    }
}

/// A flag error, worded as Go's `flag` package words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    NotDefined(String),
    NeedsArgument(String),
    BadSyntax(String),
    InvalidBool {
        name: String,
        value: String,
    },
    /// A value that the flag's type does not parse (`-seed x`, `-dial-timeout 5`).
    InvalidValue {
        name: String,
        value: String,
    },
    HelpRequested,
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::NotDefined(name) => write!(f, "flag provided but not defined: -{name}"),
            FlagError::NeedsArgument(name) => write!(f, "flag needs an argument: -{name}"),
            FlagError::BadSyntax(arg) => write!(f, "bad flag syntax: {arg}"),
            FlagError::InvalidBool { name, value } => {
                write!(
                    f,
                    "invalid boolean value {value:?} for -{name}: parse error"
                )
            }
            FlagError::InvalidValue { name, value } => {
                write!(f, "invalid value {value:?} for flag -{name}: parse error")
            }
            FlagError::HelpRequested => f.write_str("flag: help requested"),
        }
    }
}

impl std::error::Error for FlagError {}

/// A flag's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Text(String),
}

/// One flag as given: its definition, the name it was given by, and its value.
#[derive(Debug)]
pub struct Given<'a, S> {
    pub spec: &'a S,
    pub name: String,
    pub value: Value,
}

/// The flags in the order given, and the positional arguments.
#[derive(Debug)]
pub struct Parsed<'a, S> {
    pub flags: Vec<Given<'a, S>>,
    pub positionals: Vec<String>,
}

/// Parses `args` against `specs`. In [`Mode::Stop`], the positionals are the first
/// non-flag argument and everything after it.
pub fn parse<'a, S: FlagSpec>(
    specs: &'a [S],
    args: &[String],
    mode: Mode,
) -> Result<Parsed<'a, S>, FlagError> {
    let mut parsed = Parsed {
        flags: Vec::new(),
        positionals: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg.len() < 2 || !arg.starts_with('-') {
            parsed.positionals.push(arg.clone());
            if mode == Mode::Stop {
                parsed.positionals.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        }
        let body = if let Some(rest) = arg.strip_prefix("--") {
            if rest.is_empty() {
                // "--": everything after is positional.
                parsed.positionals.extend(args[i..].iter().cloned());
                break;
            }
            rest
        } else {
            &arg[1..]
        };
        if body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::BadSyntax(arg.clone()));
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(spec) = specs.iter().find(|s| s.names().contains(&name)) else {
            if name == "help" || name == "h" {
                return Err(FlagError::HelpRequested);
            }
            return Err(FlagError::NotDefined(name.to_string()));
        };
        let value = if spec.is_bool() {
            Value::Bool(match value {
                None => true,
                Some(v) => super::parse_bool(v).ok_or_else(|| FlagError::InvalidBool {
                    name: name.to_string(),
                    value: v.to_string(),
                })?,
            })
        } else {
            Value::Text(match value {
                Some(v) => v.to_string(),
                None if i < args.len() => {
                    i += 1;
                    args[i - 1].clone()
                }
                None => return Err(FlagError::NeedsArgument(name.to_string())),
            })
        };
        parsed.flags.push(Given {
            spec,
            name: name.to_string(),
            value,
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Def(&'static [&'static str], bool);

    impl FlagSpec for Def {
        fn names(&self) -> &[&str] {
            self.0
        }
        fn is_bool(&self) -> bool {
            self.1
        }
    }

    const DEFS: &[Def] = &[Def(&["host", "H"], false), Def(&["verbose", "v"], true)];

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn values(p: &Parsed<'_, Def>) -> Vec<(String, Value)> {
        p.flags
            .iter()
            .map(|g| (g.name.clone(), g.value.clone()))
            .collect()
    }

    #[test]
    fn go_rules() {
        let p = parse(DEFS, &argv("-H a --verbose=false x -v"), Mode::Stop).unwrap();
        assert_eq!(
            values(&p),
            [
                ("H".into(), Value::Text("a".into())),
                ("verbose".into(), Value::Bool(false))
            ]
        );
        assert_eq!(p.positionals, argv("x -v"));
        let p = parse(DEFS, &argv("x -v -- -H"), Mode::Anywhere).unwrap();
        assert_eq!(values(&p), [("v".into(), Value::Bool(true))]);
        assert_eq!(p.positionals, argv("x -H"));
        let p = parse(DEFS, &argv("- -v"), Mode::Stop).unwrap();
        assert_eq!(p.positionals, argv("- -v"));
        let err = |s: &str| parse(DEFS, &argv(s), Mode::Stop).unwrap_err().to_string();
        assert_eq!(err("-x"), "flag provided but not defined: -x");
        assert_eq!(err("-host"), "flag needs an argument: -host");
        assert_eq!(err("---v"), "bad flag syntax: ---v");
        assert_eq!(err("-=v"), "bad flag syntax: -=v");
        assert_eq!(
            err("-v=2"),
            "invalid boolean value \"2\" for -v: parse error"
        );
        assert_eq!(err("-help=1"), "flag: help requested");
        assert_eq!(err("-h"), "flag: help requested");
    }
}
