//! Toxic wire types: the stream (direction), the declaration types every toxic type is
//! described with ([`ToxicDef`], [`AttrDef`]), and a toxic's typed attribute values
//! ([`ToxicKind`]).
//!
//! The declarations themselves live next to each behaviour, in `toxics/<name>.rs`; this
//! module only knows their shape, so it stays at the bottom of the import graph. Whoever
//! looks a type up by name (the API, the CLI) goes through `toxics::find`.

use std::collections::BTreeMap;
use std::fmt;

/// Which way bytes flow through a link.
///
/// `Upstream` is client → server (requests), `Downstream` is server → client (responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Upstream,
    Downstream,
}

impl Direction {
    /// Parses a stream name case-insensitively, as the reference does.
    pub fn parse(s: &str) -> Option<Direction> {
        if s.eq_ignore_ascii_case("upstream") {
            Some(Direction::Upstream)
        } else if s.eq_ignore_ascii_case("downstream") {
            Some(Direction::Downstream)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        }
    }

    pub fn index(self) -> usize {
        match self {
            Direction::Upstream => 0,
            Direction::Downstream => 1,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an attribute is typed: what JSON it decodes from, and the Go type the reference's
/// decode errors name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttrType {
    /// A JSON integer (no fraction, no exponent). `go` is the Go field type in decode
    /// errors: `"int64"`, or `"int"` for the reference's slicer.
    Int { go: &'static str },
    /// A JSON number (Go `float64`).
    Float,
    /// A JSON string.
    Str,
    /// A JSON string that must be one of these words (checked by validation, so a wrong
    /// word is a 400 naming the attribute, not a decode error).
    Enum(&'static [&'static str]),
    /// A JSON object of strings (Go `map[string]string`); keys are encoded sorted, as Go
    /// sorts map keys.
    Map,
}

impl AttrType {
    /// The Go type name used in `json: cannot unmarshal …` texts.
    pub fn go_type(&self) -> &'static str {
        match self {
            AttrType::Int { go } => go,
            AttrType::Float => "float64",
            AttrType::Str | AttrType::Enum(_) => "string",
            AttrType::Map => "map[string]string",
        }
    }
}

/// A constant attribute value, usable in a `static` declaration (a default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lit {
    Int(i64),
    Float(f64),
    Str(&'static str),
    /// The empty string map.
    EmptyMap,
}

impl Lit {
    fn value(self) -> AttrValue {
        match self {
            Lit::Int(n) => AttrValue::Int(n),
            Lit::Float(f) => AttrValue::Float(f),
            Lit::Str(s) => AttrValue::Str(s.to_owned()),
            Lit::EmptyMap => AttrValue::Map(BTreeMap::new()),
        }
    }

    /// Whether this is the type's zero value (help pages mention only other defaults).
    pub fn is_zero(self) -> bool {
        match self {
            Lit::Int(n) => n == 0,
            Lit::Float(f) => f == 0.0,
            Lit::Str(s) => s.is_empty(),
            Lit::EmptyMap => true,
        }
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Int(n) => write!(f, "{n}"),
            Lit::Float(x) => write!(f, "{x}"),
            Lit::Str(s) => f.write_str(s),
            Lit::EmptyMap => f.write_str("{}"),
        }
    }
}

/// An attribute's value on a live toxic.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Int(i64),
    Float(f64),
    /// A string or enum word.
    Str(String),
    Map(BTreeMap<String, String>),
}

impl AttrValue {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            AttrValue::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self {
            AttrValue::Float(f) => Some(*f),
            AttrValue::Int(n) => Some(*n as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    fn fits(&self, ty: AttrType) -> bool {
        matches!(
            (self, ty),
            (AttrValue::Int(_), AttrType::Int { .. })
                | (AttrValue::Float(_), AttrType::Float)
                | (AttrValue::Str(_), AttrType::Str | AttrType::Enum(_))
                | (AttrValue::Map(_), AttrType::Map)
        )
    }
}

impl From<i64> for AttrValue {
    fn from(n: i64) -> AttrValue {
        AttrValue::Int(n)
    }
}

impl From<f64> for AttrValue {
    fn from(f: f64) -> AttrValue {
        AttrValue::Float(f)
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> AttrValue {
        AttrValue::Str(s.to_owned())
    }
}

/// When an attribute appears in the toxic's JSON `attributes` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Always, with its default until set (every Toxiproxy attribute).
    Always,
    /// Only once a request set it (toxi's own attributes: a Toxiproxy client never sees
    /// them unless it asked for them).
    WhenSet,
}

/// The allowed values of a number attribute. A value outside gives a 400 whose message
/// names the attribute: `rate must be at least 0`, `loss_rate must be between 0 and 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    Any,
    Int { min: Option<i64>, max: Option<i64> },
    Float { min: f64, max: f64 },
}

/// One attribute of a toxic type. Built with the `const` builder methods, one line each:
/// `AttrDef::int("rate").unit("KB/s").at_least(0).help("…")`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttrDef {
    /// The JSON key (lower case; requests match it case-insensitively, as Go does).
    pub name: &'static str,
    pub ty: AttrType,
    /// The value of an [`Shown::Always`] attribute until a request sets it.
    pub default: Lit,
    pub shown: Shown,
    pub range: Range,
    /// Appended in parentheses to the range message (`KB/s; 0 holds all data`).
    pub range_note: &'static str,
    /// For `toxi help toxics`: the value placeholder (`ms`, `bytes`) and what it means.
    pub unit: &'static str,
    pub help: &'static str,
}

impl AttrDef {
    const fn new(name: &'static str, ty: AttrType, default: Lit) -> AttrDef {
        AttrDef {
            name,
            ty,
            default,
            shown: Shown::Always,
            range: Range::Any,
            range_note: "",
            unit: "",
            help: "",
        }
    }

    /// A Go `int64` attribute, default 0.
    pub const fn int(name: &'static str) -> AttrDef {
        AttrDef::new(name, AttrType::Int { go: "int64" }, Lit::Int(0))
    }

    /// An integer attribute whose Go field type is `go` (`"int"`), default 0.
    pub const fn int_go(name: &'static str, go: &'static str) -> AttrDef {
        AttrDef::new(name, AttrType::Int { go }, Lit::Int(0))
    }

    /// A `float64` attribute, default 0.
    pub const fn float(name: &'static str) -> AttrDef {
        AttrDef::new(name, AttrType::Float, Lit::Float(0.0))
    }

    /// A string attribute, default empty.
    pub const fn string(name: &'static str) -> AttrDef {
        AttrDef::new(name, AttrType::Str, Lit::Str(""))
    }

    /// A string attribute restricted to `words`; the default is the first word.
    pub const fn one_of(name: &'static str, words: &'static [&'static str]) -> AttrDef {
        AttrDef::new(name, AttrType::Enum(words), Lit::Str(words[0]))
    }

    /// A string → string map attribute, default empty.
    pub const fn map(name: &'static str) -> AttrDef {
        AttrDef::new(name, AttrType::Map, Lit::EmptyMap)
    }

    pub const fn default(mut self, value: Lit) -> AttrDef {
        self.default = value;
        self
    }

    /// Shown in JSON only once set (see [`Shown::WhenSet`]).
    pub const fn when_set(mut self) -> AttrDef {
        self.shown = Shown::WhenSet;
        self
    }

    pub const fn at_least(mut self, min: i64) -> AttrDef {
        self.range = Range::Int {
            min: Some(min),
            max: None,
        };
        self
    }

    pub const fn between(mut self, min: i64, max: i64) -> AttrDef {
        self.range = Range::Int {
            min: Some(min),
            max: Some(max),
        };
        self
    }

    pub const fn between_f(mut self, min: f64, max: f64) -> AttrDef {
        self.range = Range::Float { min, max };
        self
    }

    pub const fn range_note(mut self, note: &'static str) -> AttrDef {
        self.range_note = note;
        self
    }

    pub const fn unit(mut self, unit: &'static str) -> AttrDef {
        self.unit = unit;
        self
    }

    pub const fn help(mut self, help: &'static str) -> AttrDef {
        self.help = help;
        self
    }

    /// Checks `value` against the range or word list; the message names the attribute.
    pub fn check(&self, value: &AttrValue) -> Result<(), String> {
        let fail = |what: String| {
            let mut msg = format!("{} must be {what}", self.name);
            if !self.range_note.is_empty() {
                msg.push_str(&format!(" ({})", self.range_note));
            }
            Err(msg)
        };
        match (self.range, value) {
            (Range::Int { min, max }, AttrValue::Int(n)) => match (min, max) {
                (Some(lo), Some(hi)) if !(lo..=hi).contains(n) => {
                    fail(format!("between {lo} and {hi}"))
                }
                (Some(lo), None) if *n < lo => fail(format!("at least {lo}")),
                (None, Some(hi)) if *n > hi => fail(format!("at most {hi}")),
                _ => Ok(()),
            },
            (Range::Float { min, max }, AttrValue::Float(f)) if !(min..=max).contains(f) => {
                fail(format!("between {min} and {max}"))
            }
            _ => match (self.ty, value) {
                (AttrType::Enum(words), AttrValue::Str(s)) if !words.contains(&s.as_str()) => {
                    fail(format!("one of {}", words.join(", ")))
                }
                _ => Ok(()),
            },
        }
    }
}

/// Which proxies a toxic type may be added to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Any proxy (every TCP toxic).
    Any,
    /// Only proxies that speak HTTP (HTTP toxics).
    Http,
}

/// A check across a toxic's attributes; the error is the 400 message.
pub type ToxicCheck = fn(&ToxicKind) -> Result<(), String>;

/// Everything about one toxic type except its behaviour: a `static DEF` in
/// `toxics/<name>.rs`, built with the `const` builder methods.
#[derive(Debug)]
pub struct ToxicDef {
    /// The wire `type` string.
    pub name: &'static str,
    /// The Go struct name the reference reports in decode errors (`LatencyToxic`).
    pub go_struct: &'static str,
    /// One line for `toxi help toxics`.
    pub summary: &'static str,
    /// In the reference's JSON key order.
    pub attrs: &'static [AttrDef],
    /// Whether removing the toxic tears down the connections it was on (only `timeout`,
    /// as in the reference: its cleanup closes the stream).
    pub closes_on_remove: bool,
    pub applies: Applies,
    /// A check across attributes, run after every attribute's own range check.
    pub check: Option<ToxicCheck>,
}

impl ToxicDef {
    pub const fn new(name: &'static str, go_struct: &'static str) -> ToxicDef {
        ToxicDef {
            name,
            go_struct,
            summary: "",
            attrs: &[],
            closes_on_remove: false,
            applies: Applies::Any,
            check: None,
        }
    }

    pub const fn summary(mut self, summary: &'static str) -> ToxicDef {
        self.summary = summary;
        self
    }

    pub const fn attrs(mut self, attrs: &'static [AttrDef]) -> ToxicDef {
        self.attrs = attrs;
        self
    }

    pub const fn closes_on_remove(mut self) -> ToxicDef {
        self.closes_on_remove = true;
        self
    }

    pub const fn http_only(mut self) -> ToxicDef {
        self.applies = Applies::Http;
        self
    }

    pub const fn check(mut self, check: ToxicCheck) -> ToxicDef {
        self.check = Some(check);
        self
    }

    pub fn attr(&self, name: &str) -> Option<&'static AttrDef> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

/// A toxic's type and attribute values.
///
/// Units are the declaration's: `latency`/`jitter`/`delay`/`timeout` in milliseconds,
/// except the slicer's `delay` in microseconds; `rate` in KB/s (1 KB = 1000 bytes);
/// sizes in bytes.
#[derive(Clone)]
pub struct ToxicKind {
    def: &'static ToxicDef,
    /// One slot per declared attribute, in declaration order; `None` only for an unset
    /// [`Shown::WhenSet`] attribute.
    values: Vec<Option<AttrValue>>,
}

impl ToxicKind {
    /// A toxic of this type with every attribute at its default.
    pub fn new(def: &'static ToxicDef) -> ToxicKind {
        let values = def
            .attrs
            .iter()
            .map(|a| (a.shown == Shown::Always).then(|| a.default.value()))
            .collect();
        ToxicKind { def, values }
    }

    pub fn def(&self) -> &'static ToxicDef {
        self.def
    }

    /// Whether this is a toxic of the type `def` declares.
    pub fn is(&self, def: &ToxicDef) -> bool {
        self.def.name == def.name
    }

    /// The wire `type` string.
    pub fn type_name(&self) -> &'static str {
        self.def.name
    }

    /// The Go struct name the reference reports in decode errors (`LatencyToxic`, ...).
    pub fn go_struct_name(&self) -> &'static str {
        self.def.go_struct
    }

    /// The attributes the JSON shows, with their values, in declaration order.
    pub fn attributes(&self) -> impl Iterator<Item = (&'static AttrDef, &AttrValue)> {
        self.def
            .attrs
            .iter()
            .zip(&self.values)
            .filter_map(|(a, v)| v.as_ref().map(|v| (a, v)))
    }

    /// The declaration and value slot of the attribute `name` (exact name).
    pub fn slot_mut(&mut self, name: &str) -> Option<(&'static AttrDef, &mut Option<AttrValue>)> {
        let i = self.def.attrs.iter().position(|a| a.name == name)?;
        Some((&self.def.attrs[i], &mut self.values[i]))
    }

    /// The value of `name`, if the type has it and it is set.
    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        debug_assert!(
            self.def.attr(name).is_some(),
            "{} has no attribute {name}",
            self.def.name
        );
        let i = self.def.attrs.iter().position(|a| a.name == name)?;
        self.values[i].as_ref()
    }

    /// An integer attribute's value (0 when unset).
    pub fn int(&self, name: &str) -> i64 {
        self.get(name).and_then(AttrValue::as_int).unwrap_or(0)
    }

    /// A number attribute's value (0 when unset).
    pub fn float(&self, name: &str) -> f64 {
        self.get(name).and_then(AttrValue::as_float).unwrap_or(0.0)
    }

    /// A string or enum attribute's value, if set.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(AttrValue::as_str)
    }

    /// Sets an attribute. Fails when the type has no such attribute or the value is of
    /// another type (ranges are checked by [`ToxicKind::validate`]).
    pub fn set(&mut self, name: &str, value: impl Into<AttrValue>) -> Result<(), String> {
        let value = value.into();
        let type_name = self.def.name;
        let (attr, slot) = self
            .slot_mut(name)
            .ok_or_else(|| format!("{type_name} has no attribute {name}"))?;
        if !value.fits(attr.ty) {
            return Err(format!("{name} takes a {}", attr.ty.go_type()));
        }
        *slot = Some(value);
        Ok(())
    }

    /// [`ToxicKind::set`] for literals in code and tests: panics on a wrong name or type.
    pub fn with(mut self, name: &str, value: impl Into<AttrValue>) -> ToxicKind {
        if let Err(e) = self.set(name, value) {
            panic!("{e}");
        }
        self
    }

    /// Rejects values that crash or wedge the reference (DECISIONS §2.2): each attribute's
    /// range, in declaration order, then the type's own check. The message names the
    /// attribute and its allowed range.
    pub fn validate(&self) -> Result<(), String> {
        for (attr, value) in self.attributes() {
            attr.check(value)?;
        }
        match self.def.check {
            Some(check) => check(self),
            None => Ok(()),
        }
    }
}

impl PartialEq for ToxicKind {
    fn eq(&self, other: &ToxicKind) -> bool {
        self.def.name == other.def.name && self.values == other.values
    }
}

impl fmt::Debug for ToxicKind {
    /// `latency { latency: 100, jitter: 0 }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct(self.def.name);
        for (attr, value) in self.def.attrs.iter().zip(&self.values) {
            match value {
                Some(AttrValue::Int(n)) => s.field(attr.name, n),
                Some(AttrValue::Float(x)) => s.field(attr.name, x),
                Some(AttrValue::Str(x)) => s.field(attr.name, x),
                Some(AttrValue::Map(m)) => s.field(attr.name, m),
                None => s.field(attr.name, &None::<()>),
            };
        }
        s.finish()
    }
}
