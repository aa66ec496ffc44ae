//! JSON the way Go's `encoding/json` reads and writes it, for the HTTP API.
//!
//! # Decoding
//!
//! Toxiproxy decodes request bodies with `json.NewDecoder(body).Decode(&goStruct)`. Clients
//! rely on the resulting leniency, so it is reproduced here:
//!
//! * only the **first** JSON value of the body is read; whatever follows it is ignored;
//! * an empty (or all-whitespace) body is the error `EOF`, a truncated one `unexpected EOF`,
//!   and a syntax error reads like Go's scanner (`invalid character 'x' looking for
//!   beginning of value`);
//! * the whole value is syntax-checked before any field is looked at, so a syntax error
//!   always wins over a type error;
//! * object keys match struct fields case-insensitively (Go's folding), unknown keys are
//!   ignored, and repeated keys are applied in input order, so the last one wins;
//! * `null` leaves a field at its default or current value;
//! * a value of the wrong JSON type gives Go's `json: cannot unmarshal <what> into Go struct
//!   field <Struct>.<path> of type <type>` text, and integers reject fractions, exponents
//!   and out-of-range values (`number 1.5`);
//! * nesting deeper than Go's limit (10000) is a syntax error; the parser is iterative and
//!   the tree is torn down iteratively, so no input can overflow the stack;
//! * invalid UTF-8 inside a string is rejected (Go would substitute U+FFFD).
//!
//! [`DecodeError`] displays as the Go text; the API prefixes it with `bad request body: `.
//!
//! # Encoding
//!
//! Responses are written by hand in Go's field order (proxy: `name`, `listen`, `upstream`,
//! `enabled`, `"Logger":{}`, `toxics`; toxic: `attributes`, `name`, `type`, `stream`,
//! `toxicity`), with Go's string escaping (`<`, `>`, `&`, U+2028 and U+2029 as `\u003c`
//! and so on) and Go's float32 formatting for `toxicity`.

use std::collections::BTreeMap;
use std::fmt;

use crate::gocompat::quote_char;
use crate::model::schedule::{self, Schedule};
use crate::model::{
    AttrDef, AttrType, AttrValue, Clients, Direction, HttpMatch, Protocol, ProxyInput,
    ProxySnapshot, ToxicDef, ToxicKind, ToxicSnapshot,
};

/// Go's `maxNestingDepth` for the JSON scanner.
pub const MAX_DEPTH: usize = 10_000;

/// Go type name of the `/populate` body, as it appears in decode errors.
pub const POPULATE_TYPE: &str =
    "[]struct { toxiproxy.Proxy; Enabled *bool \"json:\\\"enabled\\\"\" }";
/// Go type name of one `/populate` entry.
pub const POPULATE_ENTRY_TYPE: &str =
    "struct { toxiproxy.Proxy; Enabled *bool \"json:\\\"enabled\\\"\" }";
/// Go type name of the toxic update body.
pub const TOXIC_UPDATE_TYPE: &str =
    "struct { Attributes interface {} \"json:\\\"attributes\\\"\"; Toxicity float32 \"json:\\\"toxicity\\\"\" }";

// ------------------------------------------------------------------------------------------
// The value tree

/// A parsed JSON value. Objects keep every member in input order, duplicates included, and
/// numbers keep their literal text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The word Go uses for this kind of value in type errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "bool",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
}

impl Drop for Json {
    /// Tears nested containers down with an explicit stack instead of recursion, so that a
    /// 10000-deep document cannot overflow a task's stack.
    fn drop(&mut self) {
        let mut stack: Vec<Json> = Vec::new();
        take_children(self, &mut stack);
        while let Some(mut node) = stack.pop() {
            take_children(&mut node, &mut stack);
            // `node` now has no children; dropping it does not recurse.
        }
    }
}

fn take_children(node: &mut Json, stack: &mut Vec<Json>) {
    match node {
        Json::Array(items) => stack.append(items),
        Json::Object(members) => stack.extend(members.drain(..).map(|(_, v)| v)),
        _ => {}
    }
}

/// A decode failure. `Display` gives Go's error text, e.g. `EOF`, `unexpected EOF`,
/// `invalid character 'x' looking for beginning of value` or
/// `json: cannot unmarshal string into Go struct field Proxy.name of type string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

fn eof() -> DecodeError {
    DecodeError("EOF".to_owned())
}

fn unexpected_eof() -> DecodeError {
    DecodeError("unexpected EOF".to_owned())
}

fn syntax(c: u8, context: &str) -> DecodeError {
    DecodeError(format!("invalid character {} {}", quote_char(c), context))
}

// ------------------------------------------------------------------------------------------
// The scanner / parser

enum Frame {
    Array(Vec<Json>),
    /// Members so far, and the key whose value is being read.
    Object(Vec<(String, Json)>, String),
}

impl Drop for Frame {
    fn drop(&mut self) {
        // Hand the children to `Json`'s iterative teardown.
        let mut stack: Vec<Json> = Vec::new();
        match self {
            Frame::Array(items) => stack.append(items),
            Frame::Object(members, _) => stack.extend(members.drain(..).map(|(_, v)| v)),
        }
        drop(Json::Array(stack));
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.i += 1;
        }
    }

    fn next_non_ws(&mut self) -> Result<u8, DecodeError> {
        self.skip_ws();
        self.peek().ok_or_else(unexpected_eof)
    }

    fn expect_colon(&mut self) -> Result<(), DecodeError> {
        match self.next_non_ws()? {
            b':' => {
                self.i += 1;
                Ok(())
            }
            c => Err(syntax(c, "after object key")),
        }
    }

    fn literal(&mut self, word: &'static str, value: Json) -> Result<Json, DecodeError> {
        self.i += 1;
        for &want in &word.as_bytes()[1..] {
            match self.peek() {
                None => return Err(unexpected_eof()),
                Some(c) if c == want => self.i += 1,
                Some(c) => {
                    return Err(syntax(
                        c,
                        &format!("in literal {word} (expecting {})", quote_char(want)),
                    ))
                }
            }
        }
        Ok(value)
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    /// Requires one digit (after `-`, `.` or an exponent), then takes the rest.
    fn require_digit(&mut self, context: &str) -> Result<(), DecodeError> {
        match self.peek() {
            None => Err(unexpected_eof()),
            Some(b'0'..=b'9') => {
                self.digits();
                Ok(())
            }
            Some(c) => Err(syntax(c, context)),
        }
    }

    fn number(&mut self) -> Result<Json, DecodeError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
            match self.peek() {
                None => return Err(unexpected_eof()),
                Some(b'0'..=b'9') => {}
                Some(c) => return Err(syntax(c, "in numeric literal")),
            }
        }
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.require_digit("after decimal point in numeric literal")?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.require_digit("in exponent of numeric literal")?;
        }
        // The slice is ASCII by construction.
        let text = String::from_utf8_lossy(&self.b[start..self.i]).into_owned();
        Ok(Json::Number(text))
    }

    /// Four hex digits at `at`, if they are there.
    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.b.get(at..at + 4)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + (d as char).to_digit(16)?;
        }
        Some(v)
    }

    /// A string literal starting at the opening quote, unquoted as Go does (bad surrogates
    /// become U+FFFD).
    fn string(&mut self) -> Result<String, DecodeError> {
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(unexpected_eof());
            };
            match c {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' => {
                    self.i += 1;
                    let Some(e) = self.peek() else {
                        return Err(unexpected_eof());
                    };
                    self.i += 1;
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => return Err(syntax(e, "in string escape code")),
                    };
                    if let Some(byte) = simple {
                        out.push(byte);
                        continue;
                    }
                    // \uXXXX: validate each digit in order, as the scanner does.
                    for k in 0..4 {
                        match self.b.get(self.i + k) {
                            None => return Err(unexpected_eof()),
                            Some(d) if d.is_ascii_hexdigit() => {}
                            Some(&d) => {
                                return Err(syntax(d, "in \\u hexadecimal character escape"))
                            }
                        }
                    }
                    let mut r = self.hex4(self.i).unwrap_or(0xfffd);
                    self.i += 4;
                    if (0xd800..0xe000).contains(&r) {
                        let pair = if self.b.get(self.i..self.i + 2) == Some(b"\\u") {
                            self.hex4(self.i + 2)
                        } else {
                            None
                        };
                        match pair {
                            Some(lo)
                                if (0xd800..0xdc00).contains(&r)
                                    && (0xdc00..0xe000).contains(&lo) =>
                            {
                                r = 0x10000 + ((r - 0xd800) << 10) + (lo - 0xdc00);
                                self.i += 6;
                            }
                            _ => r = 0xfffd,
                        }
                    }
                    let ch = char::from_u32(r).unwrap_or('\u{fffd}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1f => return Err(syntax(c, "in string literal")),
                _ => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out)
            .map_err(|_| DecodeError("invalid UTF-8 in string literal".to_owned()))
    }
}

/// Reads the first JSON value of `input` as Go's `json.Decoder.Decode` does, ignoring
/// anything after it.
pub fn parse(input: &[u8]) -> Result<Json, DecodeError> {
    let mut s = Scanner { b: input, i: 0 };
    s.skip_ws();
    if s.peek().is_none() {
        return Err(eof());
    }
    let mut stack: Vec<Frame> = Vec::new();
    'value: loop {
        let c = s.next_non_ws()?;
        let mut value = match c {
            b'{' | b'[' => {
                if stack.len() + 1 > MAX_DEPTH {
                    return Err(syntax(c, "exceeded max depth"));
                }
                s.i += 1;
                let next = s.next_non_ws()?;
                if c == b'[' {
                    if next == b']' {
                        s.i += 1;
                        Json::Array(Vec::new())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue 'value;
                    }
                } else if next == b'}' {
                    s.i += 1;
                    Json::Object(Vec::new())
                } else if next == b'"' {
                    let key = s.string()?;
                    s.expect_colon()?;
                    stack.push(Frame::Object(Vec::new(), key));
                    continue 'value;
                } else {
                    return Err(syntax(next, "looking for beginning of object key string"));
                }
            }
            b'"' => Json::String(s.string()?),
            b'-' | b'0'..=b'9' => s.number()?,
            b't' => s.literal("true", Json::Bool(true))?,
            b'f' => s.literal("false", Json::Bool(false))?,
            b'n' => s.literal("null", Json::Null)?,
            _ => return Err(syntax(c, "looking for beginning of value")),
        };
        // A value is complete: attach it to the innermost open container.
        loop {
            match stack.last_mut() {
                None => return Ok(value),
                Some(Frame::Array(items)) => {
                    items.push(value);
                    match s.next_non_ws()? {
                        b',' => {
                            s.i += 1;
                            continue 'value;
                        }
                        b']' => {
                            s.i += 1;
                            value = Json::Array(std::mem::take(items));
                            stack.pop();
                        }
                        c => return Err(syntax(c, "after array element")),
                    }
                }
                Some(Frame::Object(members, key)) => {
                    members.push((std::mem::take(key), value));
                    match s.next_non_ws()? {
                        b',' => {
                            s.i += 1;
                            match s.next_non_ws()? {
                                b'"' => {
                                    *key = s.string()?;
                                    s.expect_colon()?;
                                    continue 'value;
                                }
                                c => {
                                    return Err(syntax(
                                        c,
                                        "looking for beginning of object key string",
                                    ))
                                }
                            }
                        }
                        b'}' => {
                            s.i += 1;
                            value = Json::Object(std::mem::take(members));
                            stack.pop();
                        }
                        c => return Err(syntax(c, "after object key:value pair")),
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Typed decoding

/// Go's key folding for case-insensitive field matching: ASCII upper-cased, other runes
/// mapped through lower-case then upper-case (so `ſ` matches `s` and the Kelvin sign `k`).
fn fold(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for ch in key.chars() {
        if ch.is_ascii() {
            out.push(ch.to_ascii_uppercase());
            continue;
        }
        let mut lower = ch.to_lowercase();
        let l = match (lower.next(), lower.next()) {
            (Some(l), None) => l,
            _ => ch,
        };
        let mut upper = l.to_uppercase();
        match (upper.next(), upper.next()) {
            (Some(u), None) => out.push(u),
            _ => out.push(l),
        }
    }
    out
}

/// Whether a JSON key selects the field whose JSON name is `field` (lower-case ASCII).
pub(crate) fn key_is(key: &str, field: &str) -> bool {
    key.len() <= field.len() * 3 && fold(key).eq_ignore_ascii_case(field)
}

fn field_error(value: &Json, strukt: &str, path: &str, ty: &str) -> DecodeError {
    DecodeError(format!(
        "json: cannot unmarshal {} into Go struct field {strukt}.{path} of type {ty}",
        value.kind()
    ))
}

fn value_error(value: &Json, ty: &str) -> DecodeError {
    DecodeError(format!(
        "json: cannot unmarshal {} into Go value of type {ty}",
        value.kind()
    ))
}

fn decode_string(
    v: &Json,
    dst: &mut Option<String>,
    strukt: &str,
    path: &str,
) -> Result<(), DecodeError> {
    match v {
        Json::Null => Ok(()),
        Json::String(s) => {
            *dst = Some(s.clone());
            Ok(())
        }
        other => Err(field_error(other, strukt, path, "string")),
    }
}

fn decode_bool(
    v: &Json,
    dst: &mut Option<bool>,
    strukt: &str,
    path: &str,
) -> Result<(), DecodeError> {
    match v {
        Json::Null => Ok(()),
        Json::Bool(b) => {
            *dst = Some(*b);
            Ok(())
        }
        other => Err(field_error(other, strukt, path, "bool")),
    }
}

fn decode_f32(
    v: &Json,
    dst: &mut Option<f32>,
    strukt: &str,
    path: &str,
) -> Result<(), DecodeError> {
    match v {
        Json::Null => Ok(()),
        Json::Number(text) => match text.parse::<f32>() {
            Ok(f) if f.is_finite() => {
                *dst = Some(f);
                Ok(())
            }
            _ => Err(DecodeError(format!(
                "json: cannot unmarshal number {text} into Go struct field {strukt}.{path} of type float32"
            ))),
        },
        other => Err(field_error(other, strukt, path, "float32")),
    }
}

fn decode_int(
    v: &Json,
    dst: &mut i64,
    strukt: &str,
    path: &str,
    ty: &str,
) -> Result<(), DecodeError> {
    match v {
        Json::Null => Ok(()),
        Json::Number(text) => match text.parse::<i64>() {
            Ok(n) => {
                *dst = n;
                Ok(())
            }
            Err(_) => Err(DecodeError(format!(
                "json: cannot unmarshal number {text} into Go struct field {strukt}.{path} of type {ty}"
            ))),
        },
        other => Err(field_error(other, strukt, path, ty)),
    }
}

/// The fields of a proxy request body (create, update, one `/populate` entry). `None`
/// means "absent or null".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyFields {
    pub name: Option<String>,
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub enabled: Option<bool>,
    /// toxi's own: `"protocol": "tcp" | "http"`.
    pub protocol: Option<Protocol>,
}

/// `strukt` is the Go struct name for errors (`Proxy`, or empty for a `/populate` entry).
/// `nullable_enabled`: `enabled` is a `*bool` there, so a later `null` resets it.
fn proxy_object(
    members: &[(String, Json)],
    strukt: &str,
    nullable_enabled: bool,
) -> Result<ProxyFields, DecodeError> {
    let mut out = ProxyFields::default();
    for (key, v) in members {
        if key_is(key, "name") {
            decode_string(v, &mut out.name, strukt, "name")?;
        } else if key_is(key, "listen") {
            decode_string(v, &mut out.listen, strukt, "listen")?;
        } else if key_is(key, "upstream") {
            decode_string(v, &mut out.upstream, strukt, "upstream")?;
        } else if key_is(key, "enabled") {
            if nullable_enabled && *v == Json::Null {
                out.enabled = None;
            } else {
                decode_bool(v, &mut out.enabled, strukt, "enabled")?;
            }
        } else if key_is(key, "protocol") {
            out.protocol = decode_protocol(v, strukt)?;
        } else if key_is(key, "logger") {
            // The reference's exported `Logger *zerolog.Logger` field: objects are accepted
            // (it has no exported fields), other values are type errors.
            match v {
                Json::Null | Json::Object(_) => {}
                other => return Err(field_error(other, strukt, "Logger", "zerolog.Logger")),
            }
        }
    }
    Ok(out)
}

/// `"protocol"`: a string, `tcp` or `http` (`null` keeps the default).
fn decode_protocol(v: &Json, strukt: &str) -> Result<Option<Protocol>, DecodeError> {
    let mut text = None;
    decode_string(v, &mut text, strukt, "protocol")?;
    match text {
        None => Ok(None),
        Some(t) => Protocol::parse(&t).map(Some).ok_or_else(|| {
            DecodeError(format!(
                "protocol must be \"tcp\" or \"http\", not {}",
                quote(&t)
            ))
        }),
    }
}

/// Decodes a POST /proxies or POST|PATCH /proxies/{proxy} body (Go type `toxiproxy.Proxy`).
/// A `null` body gives all-`None`.
pub fn decode_proxy(body: &[u8]) -> Result<ProxyFields, DecodeError> {
    let doc = parse(body)?;
    match &doc {
        Json::Null => Ok(ProxyFields::default()),
        Json::Object(members) => proxy_object(members, "Proxy", false),
        other => Err(value_error(other, "toxiproxy.Proxy")),
    }
}

/// Decodes a POST /populate body (also the `-config` file) into proxies to create, with
/// the reference's defaults: missing strings are empty and `enabled` is true unless given.
/// `null` and `[]` give no entries; a `null` entry is an entry with every field missing.
pub fn decode_populate(body: &[u8]) -> Result<Vec<ProxyInput>, DecodeError> {
    let doc = parse(body)?;
    let entries: Vec<ProxyFields> = match &doc {
        Json::Null => Vec::new(),
        Json::Array(items) => items
            .iter()
            .map(|item| match item {
                Json::Null => Ok(ProxyFields::default()),
                Json::Object(members) => proxy_object(members, "", true),
                other => Err(value_error(other, POPULATE_ENTRY_TYPE)),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(value_error(other, POPULATE_TYPE)),
    };
    Ok(entries.into_iter().map(ProxyFields::into_input).collect())
}

impl ProxyFields {
    /// The proxy to create: missing strings empty, `enabled` true unless given.
    pub fn into_input(self) -> ProxyInput {
        ProxyInput {
            name: self.name.unwrap_or_default(),
            listen: self.listen.unwrap_or_default(),
            upstream: self.upstream.unwrap_or_default(),
            enabled: self.enabled.unwrap_or(true),
            protocol: self.protocol.unwrap_or_default(),
        }
    }
}

/// Merges a JSON object into a toxic's attributes (only the keys present change), each
/// decoded as its declaration types it.
fn decode_attributes(
    members: &[(String, Json)],
    kind: &mut ToxicKind,
    strukt: &str,
) -> Result<(), DecodeError> {
    let attrs = kind.def().attrs;
    for (key, v) in members {
        let Some(attr) = attrs.iter().find(|a| key_is(key, a.name)) else {
            continue;
        };
        if let Some((_, slot)) = kind.slot_mut(attr.name) {
            decode_attr(v, attr, slot, strukt, &format!("attributes.{}", attr.name))?;
        }
    }
    Ok(())
}

/// One attribute value, as Go decodes into a field of the attribute's type: `null` keeps
/// the current value, a map merges key by key.
fn decode_attr(
    v: &Json,
    attr: &AttrDef,
    slot: &mut Option<AttrValue>,
    strukt: &str,
    path: &str,
) -> Result<(), DecodeError> {
    let go = attr.ty.go_type();
    match (attr.ty, v) {
        (_, Json::Null) => {}
        (AttrType::Int { .. }, _) => {
            let mut n = slot.as_ref().and_then(AttrValue::as_int).unwrap_or(0);
            decode_int(v, &mut n, strukt, path, go)?;
            *slot = Some(AttrValue::Int(n));
        }
        (AttrType::Float, Json::Number(text)) => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => *slot = Some(AttrValue::Float(f)),
            _ => {
                return Err(DecodeError(format!(
                    "json: cannot unmarshal number {text} into Go struct field {strukt}.{path} of type {go}"
                )))
            }
        },
        (AttrType::Str | AttrType::Enum(_), Json::String(s)) => {
            *slot = Some(AttrValue::Str(s.clone()));
        }
        (AttrType::Map, Json::Object(entries)) => {
            let mut map = match slot.take() {
                Some(AttrValue::Map(m)) => m,
                _ => Default::default(),
            };
            let mut result = Ok(());
            for (key, value) in entries {
                match value {
                    Json::String(s) => {
                        map.insert(key.clone(), s.clone());
                    }
                    Json::Null => {
                        map.insert(key.clone(), String::new());
                    }
                    other => {
                        result = Err(field_error(other, strukt, path, "string"));
                        break;
                    }
                }
            }
            *slot = Some(AttrValue::Map(map));
            result?;
        }
        (_, other) => return Err(field_error(other, strukt, path, go)),
    }
    Ok(())
}

/// A syntax-checked POST /proxies/{proxy}/toxics body, with the wrapper fields decoded
/// (Go's first decode, into `ToxicWrapper`). The attributes are decoded later, once the
/// type is known, by [`ToxicCreate::decode_attributes`].
#[derive(Debug)]
pub struct ToxicCreate {
    pub name: Option<String>,
    pub type_name: Option<String>,
    pub stream: Option<String>,
    pub toxicity: Option<f32>,
    /// `clients`: `Some(None)` when the body cleared it (`null` or `[]`).
    pub clients: Option<Option<Clients>>,
    /// toxi's own: `"match"` (HTTP toxics).
    pub matcher: Option<HttpMatch>,
    doc: Json,
}

/// Decodes the wrapper fields of a toxic create body.
pub fn decode_toxic_create(body: &[u8]) -> Result<ToxicCreate, DecodeError> {
    toxic_create_from(parse(body)?)
}

/// [`decode_toxic_create`] on a parsed value.
fn toxic_create_from(doc: Json) -> Result<ToxicCreate, DecodeError> {
    let mut out = ToxicCreate {
        name: None,
        type_name: None,
        stream: None,
        toxicity: None,
        clients: None,
        matcher: None,
        doc: Json::Null,
    };
    match &doc {
        Json::Null => {}
        Json::Object(members) => {
            // The wrapper starts with a `NoopToxic` behind the `Toxic` interface; a `null`
            // clears the interface, after which any value is a type error.
            let mut toxic_nil = false;
            for (key, v) in members {
                if key_is(key, "name") {
                    decode_string(v, &mut out.name, "ToxicWrapper", "name")?;
                } else if key_is(key, "type") {
                    decode_string(v, &mut out.type_name, "ToxicWrapper", "type")?;
                } else if key_is(key, "stream") {
                    decode_string(v, &mut out.stream, "ToxicWrapper", "stream")?;
                } else if key_is(key, "toxicity") {
                    decode_f32(v, &mut out.toxicity, "ToxicWrapper", "toxicity")?;
                } else if key_is(key, "clients") {
                    out.clients = Some(decode_clients(v)?);
                } else if key_is(key, "match") {
                    decode_match(v, &mut out.matcher)?;
                } else if key_is(key, "attributes") {
                    match v {
                        Json::Null => toxic_nil = true,
                        Json::Object(_) if !toxic_nil => {}
                        other if toxic_nil => {
                            return Err(field_error(
                                other,
                                "ToxicWrapper",
                                "attributes",
                                "toxics.Toxic",
                            ))
                        }
                        other => {
                            return Err(field_error(
                                other,
                                "ToxicWrapper",
                                "attributes",
                                "toxics.NoopToxic",
                            ))
                        }
                    }
                }
            }
        }
        other => return Err(value_error(other, "toxics.ToxicWrapper")),
    }
    out.doc = doc;
    Ok(out)
}

impl ToxicCreate {
    /// Go's second decode: every `attributes` member, in order, into the typed toxic. After
    /// an `attributes: null` later objects no longer reach the toxic (they land in a fresh
    /// `interface{}`), exactly as in the reference.
    pub fn decode_attributes(&self, kind: &mut ToxicKind) -> Result<(), DecodeError> {
        let Json::Object(members) = &self.doc else {
            return Ok(());
        };
        let strukt = kind.go_struct_name();
        let mut holding = true;
        for (key, v) in members {
            if !key_is(key, "attributes") {
                continue;
            }
            match v {
                Json::Null => holding = false,
                Json::Object(attrs) if holding => decode_attributes(attrs, kind, strukt)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// A toxic's `clients` (toxi's own field): a list of addresses or CIDRs; `null` or `[]`
/// clears the targeting. The error names the bad entry.
fn decode_clients(v: &Json) -> Result<Option<Clients>, DecodeError> {
    let not_list = || DecodeError("clients must be a list of IP addresses or CIDRs".to_owned());
    let items = match v {
        Json::Null => return Ok(None),
        Json::Array(items) => items,
        _ => return Err(not_list()),
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Json::String(s) => entries.push(s.as_str()),
            _ => return Err(not_list()),
        }
    }
    if entries.is_empty() {
        return Ok(None);
    }
    Clients::parse(&entries).map(Some).map_err(DecodeError)
}

/// A syntax-checked POST|PATCH /proxies/{proxy}/toxics/{toxic} body.
#[derive(Debug)]
pub struct ToxicUpdate {
    doc: Json,
}

/// Parses a toxic update body (syntax only; [`ToxicUpdate::apply`] does the typed part).
pub fn decode_toxic_update(body: &[u8]) -> Result<ToxicUpdate, DecodeError> {
    Ok(ToxicUpdate { doc: parse(body)? })
}

impl ToxicUpdate {
    /// Merges the body into `toxic`: attributes present change, `toxicity` is replaced if
    /// present, and `name`, `type` and `stream` are ignored.
    pub fn apply(&self, toxic: &mut ToxicSnapshot) -> Result<(), DecodeError> {
        let members = match &self.doc {
            Json::Null => return Ok(()),
            Json::Object(members) => members,
            other => return Err(value_error(other, TOXIC_UPDATE_TYPE)),
        };
        let strukt = toxic.kind.go_struct_name();
        let mut holding = true;
        let mut toxicity = None;
        for (key, v) in members {
            if key_is(key, "attributes") {
                match v {
                    Json::Null => holding = false,
                    _ if !holding => {}
                    Json::Object(attrs) => decode_attributes(attrs, &mut toxic.kind, strukt)?,
                    other => {
                        return Err(field_error(
                            other,
                            "",
                            "attributes",
                            &format!("toxics.{strukt}"),
                        ))
                    }
                }
            } else if key_is(key, "toxicity") {
                decode_f32(v, &mut toxicity, "", "toxicity")?;
            } else if key_is(key, "clients") {
                toxic.clients = decode_clients(v)?;
            } else if key_is(key, "match") {
                decode_match(v, &mut toxic.matcher)?;
            }
        }
        if let Some(t) = toxicity {
            toxic.toxicity = t;
        }
        Ok(())
    }
}

/// `"match": {"method": "POST", "path": "/api/*", "headers": {"x-test": "1"}}`; `null`
/// (or `{}`) removes the match.
fn decode_match(v: &Json, out: &mut Option<HttpMatch>) -> Result<(), DecodeError> {
    let members = match v {
        Json::Null => {
            *out = None;
            return Ok(());
        }
        Json::Object(members) => members,
        other => return Err(field_error(other, "ToxicWrapper", "match", "match")),
    };
    let mut m = HttpMatch::default();
    for (key, v) in members {
        if key_is(key, "method") {
            decode_string(v, &mut m.method, "match", "method")?;
        } else if key_is(key, "path") {
            decode_string(v, &mut m.path, "match", "path")?;
        } else if key_is(key, "headers") {
            match v {
                Json::Null => {}
                Json::Object(entries) => {
                    for (name, value) in entries {
                        let Json::String(value) = value else {
                            return Err(field_error(value, "match", "headers", "string"));
                        };
                        m.headers.insert(name.clone(), value.clone());
                    }
                }
                other => return Err(field_error(other, "match", "headers", "map[string]string")),
            }
        } else {
            return Err(DecodeError(format!(
                "match has no field {} (method, path, headers)",
                quote(key)
            )));
        }
    }
    m.method = m.method.filter(|s| !s.is_empty());
    m.path = m.path.filter(|s| !s.is_empty());
    m.validate().map_err(DecodeError)?;
    *out = (m != HttpMatch::default()).then_some(m);
    Ok(())
}

/// Appends a match object: only the conditions given.
fn write_match(out: &mut String, m: &HttpMatch) {
    out.push('{');
    let mut sep = "";
    if let Some(method) = &m.method {
        out.push_str("\"method\":");
        write_str(out, method);
        sep = ",";
    }
    if let Some(path) = &m.path {
        out.push_str(sep);
        out.push_str("\"path\":");
        write_str(out, path);
        sep = ",";
    }
    if !m.headers.is_empty() {
        out.push_str(sep);
        out.push_str("\"headers\":");
        write_str_map(out, &m.headers);
    }
    out.push('}');
}

// ------------------------------------------------------------------------------------------
// Responses (the typed client's side)

/// Looks a toxic type's declaration up by its wire name (`toxics::def`: the catalog lives
/// above `model`).
pub type FindDef = fn(&str) -> Option<&'static ToxicDef>;

/// An error body `{"error":"…","status":N}` (Go type `toxiproxy.ApiError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub message: String,
    pub status: i64,
}

/// Decodes an error body as the Go client does; `null` gives `None`.
pub fn decode_api_error(body: &[u8]) -> Result<Option<ApiError>, DecodeError> {
    let doc = parse(body)?;
    let members = match &doc {
        Json::Null => return Ok(None),
        Json::Object(members) => members,
        other => return Err(value_error(other, "toxiproxy.ApiError")),
    };
    let (mut message, mut status) = (None, 0i64);
    for (key, v) in members {
        if key_is(key, "error") {
            decode_string(v, &mut message, "ApiError", "error")?;
        } else if key_is(key, "status") {
            decode_int(v, &mut status, "ApiError", "status", "int")?;
        }
    }
    Ok(Some(ApiError {
        message: message.unwrap_or_default(),
        status,
    }))
}

/// The last `key` member of a response object as a list (Go type `go_ty` in `strukt`):
/// absent or `null` is empty, each item read by `item`.
fn list_member<T>(
    members: &[(String, Json)],
    strukt: &str,
    key: &str,
    go_ty: &str,
    item: impl Fn(&Json) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::new();
    for (k, v) in members {
        if key_is(k, key) {
            out = match v {
                Json::Null => Vec::new(),
                Json::Array(items) => items.iter().map(&item).collect::<Result<_, _>>()?,
                other => return Err(field_error(other, strukt, key, go_ty)),
            };
        }
    }
    Ok(out)
}

/// A proxy object of a response (Go type `toxiproxy.Proxy`); `null` is an empty proxy.
fn proxy_response(v: &Json, find: FindDef, ty: &str) -> Result<ProxySnapshot, DecodeError> {
    let members = match v {
        Json::Null => &[][..],
        Json::Object(members) => members,
        other => return Err(value_error(other, ty)),
    };
    let fields = proxy_object(members, "Proxy", false)?;
    let toxics = list_member(members, "Proxy", "toxics", "[]toxiproxy.Toxic", |t| {
        toxic_response(t, find, "Proxy.toxics.", "toxiproxy.Toxic")
    })?;
    Ok(ProxySnapshot {
        name: fields.name.unwrap_or_default(),
        listen: fields.listen.unwrap_or_default(),
        upstream: fields.upstream.unwrap_or_default(),
        enabled: fields.enabled.unwrap_or(false),
        protocol: fields.protocol.unwrap_or_default(),
        toxics,
    })
}

/// A toxic object of a response (Go type `toxiproxy.Toxic`). `path` prefixes field names
/// in errors (`Proxy.toxics.`). The type must be one the catalog declares.
fn toxic_response(
    v: &Json,
    find: FindDef,
    path: &str,
    ty: &str,
) -> Result<ToxicSnapshot, DecodeError> {
    let members = match v {
        Json::Object(members) => members,
        other => return Err(value_error(other, ty)),
    };
    let strukt = path.trim_end_matches('.');
    let (strukt, prefix) = match strukt.split_once('.') {
        Some((s, rest)) => (s, format!("{rest}.")),
        None => (
            if strukt.is_empty() { "Toxic" } else { strukt },
            String::new(),
        ),
    };
    let (mut name, mut type_name, mut stream, mut toxicity) = (None, None, None, None);
    for (key, v) in members {
        if key_is(key, "name") {
            decode_string(v, &mut name, strukt, &format!("{prefix}name"))?;
        } else if key_is(key, "type") {
            decode_string(v, &mut type_name, strukt, &format!("{prefix}type"))?;
        } else if key_is(key, "stream") {
            decode_string(v, &mut stream, strukt, &format!("{prefix}stream"))?;
        } else if key_is(key, "toxicity") {
            decode_f32(v, &mut toxicity, strukt, &format!("{prefix}toxicity"))?;
        }
    }
    let type_name = type_name.unwrap_or_default();
    let def = find(&type_name)
        .ok_or_else(|| DecodeError(format!("unknown toxic type {}", quote(&type_name))))?;
    let mut kind = ToxicKind::new(def);
    for (key, v) in members {
        if key_is(key, "attributes") {
            match v {
                Json::Null => {}
                Json::Object(attrs) => decode_attributes(attrs, &mut kind, def.go_struct)?,
                other => {
                    let field = format!("{prefix}attributes");
                    return Err(field_error(other, strukt, &field, "toxiproxy.Attributes"));
                }
            }
        }
    }
    let stream = stream.unwrap_or_default();
    // toxi's own: a scheduled toxic carries its schedule and whether it acts now.
    let mut schedule = schedule_member(v).map_err(DecodeError)?.flatten();
    if let Some(s) = &mut schedule {
        let mut active = None;
        for (key, v) in members {
            if key_is(key, "active") {
                decode_bool(v, &mut active, strukt, &format!("{prefix}active"))?;
            }
        }
        s.active = active.unwrap_or(false);
    }
    // toxi's own: a targeted toxic carries its `clients`, an HTTP toxic its `match`.
    let (mut clients, mut matcher) = (None, None);
    for (key, v) in members {
        if key_is(key, "clients") {
            clients = decode_clients(v)?;
        } else if key_is(key, "match") {
            decode_match(v, &mut matcher)?;
        }
    }
    Ok(ToxicSnapshot {
        name: name.unwrap_or_default(),
        direction: Direction::parse(&stream).unwrap_or(Direction::Downstream),
        stream,
        toxicity: toxicity.unwrap_or(1.0),
        kind,
        clients,
        schedule,
        matcher,
    })
}

/// GET /proxies/{proxy}, and the answers of create and update.
pub fn decode_proxy_response(body: &[u8], find: FindDef) -> Result<ProxySnapshot, DecodeError> {
    proxy_response(&parse(body)?, find, "toxiproxy.Proxy")
}

/// GET /proxies: proxies keyed by name.
pub fn decode_proxy_index(
    body: &[u8],
    find: FindDef,
) -> Result<BTreeMap<String, ProxySnapshot>, DecodeError> {
    const TY: &str = "map[string]*toxiproxy.Proxy";
    match &parse(body)? {
        Json::Null => Ok(BTreeMap::new()),
        Json::Object(members) => members
            .iter()
            .map(|(k, v)| Ok((k.clone(), proxy_response(v, find, "toxiproxy.Proxy")?)))
            .collect(),
        other => Err(value_error(other, TY)),
    }
}

/// One toxic (GET, and the answers of add and update).
pub fn decode_toxic_response(body: &[u8], find: FindDef) -> Result<ToxicSnapshot, DecodeError> {
    toxic_response(&parse(body)?, find, "", "toxiproxy.Toxic")
}

/// GET /proxies/{proxy}/toxics.
pub fn decode_toxics_response(
    body: &[u8],
    find: FindDef,
) -> Result<Vec<ToxicSnapshot>, DecodeError> {
    match &parse(body)? {
        Json::Null => Ok(Vec::new()),
        Json::Array(items) => items
            .iter()
            .map(|t| toxic_response(t, find, "", "toxiproxy.Toxic"))
            .collect(),
        other => Err(value_error(other, "[]toxiproxy.Toxic")),
    }
}

/// The /populate answer's `proxies` (`null` or missing gives none).
pub fn decode_populate_response(
    body: &[u8],
    find: FindDef,
) -> Result<Vec<ProxySnapshot>, DecodeError> {
    let doc = parse(body)?;
    let members = match &doc {
        Json::Null => return Ok(Vec::new()),
        Json::Object(members) => members,
        other => {
            return Err(value_error(
                other,
                "struct { Proxies []toxiproxy.Proxy \"json:\\\"proxies\\\"\" }",
            ))
        }
    };
    list_member(members, "", "proxies", "[]toxiproxy.Proxy", |p| {
        proxy_response(p, find, "toxiproxy.Proxy")
    })
}

/// GET /version: the `version` string of `{"version":"…"}`.
pub fn decode_version(body: &[u8]) -> Result<String, DecodeError> {
    let doc = parse(body)?;
    let members = match &doc {
        Json::Object(members) => members,
        other => return Err(value_error(other, "struct { Version string }")),
    };
    let mut version = None;
    for (key, v) in members {
        if key_is(key, "version") {
            decode_string(v, &mut version, "", "version")?;
        }
    }
    Ok(version.unwrap_or_default())
}

// toxi's own toxic fields: `schedule` (beyond.md §1.1)

/// The last `schedule` member of a toxic body: absent is `None`, `null` is `Some(None)`.
fn schedule_member(doc: &Json) -> Result<Option<Option<Schedule>>, String> {
    let Json::Object(members) = doc else {
        return Ok(None);
    };
    match members.iter().rev().find(|(k, _)| key_is(k, "schedule")) {
        None => Ok(None),
        Some((_, v)) => schedule::decode(v).map(Some),
    }
}

/// The `toxics` of each `/populate` (or `-config`) entry, in entry order: `None` where the
/// key is absent or `null` (the proxy's toxics are left alone), else each toxic as
/// `POST /proxies/{proxy}/toxics` takes it. Call after [`decode_populate`] accepted `body`.
pub fn decode_populate_toxics(body: &[u8]) -> Result<Vec<Option<Vec<ToxicCreate>>>, DecodeError> {
    let doc = parse(body)?;
    let Json::Array(items) = &doc else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|item| {
            let Json::Object(members) = item else {
                return Ok(None);
            };
            match members.iter().rev().find(|(k, _)| key_is(k, "toxics")) {
                None | Some((_, Json::Null)) => Ok(None),
                Some((_, Json::Array(toxics))) => toxics
                    .iter()
                    .map(|t| toxic_create_from(t.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some((_, other)) => Err(field_error(other, "", "toxics", "[]toxics.ToxicWrapper")),
            }
        })
        .collect()
}

impl ToxicCreate {
    /// The toxic's `schedule`, validated (`null` or absent: none). The error names the field.
    pub fn schedule(&self) -> Result<Option<Schedule>, String> {
        Ok(schedule_member(&self.doc)?.flatten())
    }
}

impl ToxicUpdate {
    /// A `schedule` to set (`Some(Some(_))`), clear (`Some(None)`, from `null`) or keep
    /// (`None`, absent).
    pub fn schedule(&self) -> Result<Option<Option<Schedule>>, String> {
        schedule_member(&self.doc)
    }
}

// ------------------------------------------------------------------------------------------
// Encoding

/// Appends a JSON object of string values, in the map's order.
fn write_str_map<'a>(out: &mut String, map: impl IntoIterator<Item = (&'a String, &'a String)>) {
    out.push('{');
    for (i, (k, v)) in map.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_str(out, v);
    }
    out.push('}');
}

/// Appends `s` as a JSON string literal, escaped as Go's `encoding/json` does with HTML
/// escaping on.
pub fn write_str(out: &mut String, s: &str) {
    write_escaped(out, s, true);
}

/// Appends `s` as a JSON string literal without the HTML escapes (`<`, `>`, `&`, U+2028,
/// U+2029 stay as they are), as zerolog writes log fields.
pub fn write_str_plain(out: &mut String, s: &str) {
    write_escaped(out, s, false);
}

/// Whether [`write_str_plain`] copies byte `b` as it is (no escape).
pub fn is_plain_byte(b: u8) -> bool {
    b >= 0x20 && b != b'"' && b != b'\\'
}

fn write_escaped(out: &mut String, s: &str, html: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    if !html {
        // Runs of bytes that need no escape are copied whole (log lines take this path).
        let mut run = 0;
        for (i, b) in s.bytes().enumerate() {
            if is_plain_byte(b) {
                continue;
            }
            let esc = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                _ => "",
            };
            out.push_str(&s[run..i]);
            if esc.is_empty() {
                push_u00(out, b as char);
            } else {
                out.push_str(esc);
            }
            run = i + 1;
        }
        out.push_str(&s[run..]);
        out.push('"');
        return;
    }
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{0}'..='\u{1f}' => push_u00(out, ch),
            '<' | '>' | '&' if html => push_u00(out, ch),
            '\u{2028}' if html => out.push_str("\\u2028"),
            '\u{2029}' if html => out.push_str("\\u2029"),
            _ => out.push(ch),
        }
    }
    out.push('"');

    fn push_u00(out: &mut String, ch: char) {
        let c = ch as u32;
        out.push_str("\\u00");
        out.push(HEX[(c >> 4) as usize] as char);
        out.push(HEX[(c & 0xf) as usize] as char);
    }
}

/// A JSON string literal for `s` (see [`write_str`]).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_str(&mut out, s);
    out
}

/// Formats a float32 as Go's `encoding/json` does: the shortest text that reads back as
/// the same float32, in plain notation unless the magnitude is below 1e-6 or at least
/// 1e21, where it uses `1e-7` / `1e+21` style exponents.
pub fn format_f32(f: f32) -> String {
    let abs = f.abs();
    let exponent = abs != 0.0 && !(1e-6..1e21).contains(&abs);
    go_float(
        f.is_finite(),
        exponent,
        || format!("{f}"),
        || format!("{f:e}"),
    )
}

/// Formats a float64 as Go's `encoding/json` does (see [`format_f32`]).
pub fn format_f64(f: f64) -> String {
    let abs = f.abs();
    let exponent = abs != 0.0 && !(1e-6..1e21).contains(&abs);
    go_float(
        f.is_finite(),
        exponent,
        || format!("{f}"),
        || format!("{f:e}"),
    )
}

/// Go's float encoding from Rust's shortest round-trip texts, plain (`{}`) or, when
/// `use_exponent`, exponent (`{:e}`) with Go's exponent spelling.
fn go_float(
    finite: bool,
    use_exponent: bool,
    plain: impl FnOnce() -> String,
    exponent: impl FnOnce() -> String,
) -> String {
    if !finite {
        // Go refuses to encode these; they cannot come from JSON input.
        return "null".to_owned();
    }
    if use_exponent {
        let e = exponent();
        let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        if exp < 0 {
            format!("{mantissa}e-{}", -exp)
        } else {
            format!("{mantissa}e+{exp:02}")
        }
    } else {
        plain()
    }
}

/// Appends one attribute value: integers as written, floats as Go writes float64,
/// strings escaped, maps with their keys sorted.
fn write_attr_value(out: &mut String, value: &AttrValue) {
    match value {
        AttrValue::Int(n) => out.push_str(&n.to_string()),
        AttrValue::Float(f) => out.push_str(&format_f64(*f)),
        AttrValue::Str(s) => write_str(out, s),
        AttrValue::Map(map) => write_str_map(out, map),
    }
}

/// Appends a toxic object: `attributes`, `name`, `type`, `stream`, `toxicity`.
pub fn write_toxic(out: &mut String, t: &ToxicSnapshot) {
    out.push_str("{\"attributes\":{");
    for (i, (attr, value)) in t.kind.attributes().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, attr.name);
        out.push(':');
        write_attr_value(out, value);
    }
    out.push_str("},\"name\":");
    write_str(out, &t.name);
    out.push_str(",\"type\":");
    write_str(out, t.kind.type_name());
    out.push_str(",\"stream\":");
    write_str(out, &t.stream);
    out.push_str(",\"toxicity\":");
    out.push_str(&format_f32(t.toxicity));
    if let Some(clients) = &t.clients {
        out.push_str(",\"clients\":[");
        for (i, c) in clients.entries().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(out, c);
        }
        out.push(']');
    }
    // toxi's own: only on scheduled toxics.
    if let Some(schedule) = &t.schedule {
        out.push_str(",\"schedule\":");
        schedule.write_json(out);
        out.push_str(if schedule.active {
            ",\"active\":true"
        } else {
            ",\"active\":false"
        });
    }
    if let Some(m) = &t.matcher {
        out.push_str(",\"match\":");
        write_match(out, m);
    }
    out.push('}');
}

/// A JSON array of toxics.
pub fn write_toxics(out: &mut String, toxics: &[ToxicSnapshot]) {
    out.push('[');
    for (i, t) in toxics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_toxic(out, t);
    }
    out.push(']');
}

/// Appends a proxy object: `name`, `listen`, `upstream`, `enabled`, `"Logger":{}`, `toxics`.
pub fn write_proxy(out: &mut String, p: &ProxySnapshot) {
    out.push_str("{\"name\":");
    write_str(out, &p.name);
    out.push_str(",\"listen\":");
    write_str(out, &p.listen);
    out.push_str(",\"upstream\":");
    write_str(out, &p.upstream);
    out.push_str(",\"enabled\":");
    out.push_str(if p.enabled { "true" } else { "false" });
    if !p.protocol.is_tcp() {
        out.push_str(",\"protocol\":");
        write_str(out, p.protocol.as_str());
    }
    out.push_str(",\"Logger\":{},\"toxics\":");
    write_toxics(out, &p.toxics);
    out.push('}');
}

/// One toxic, as returned by the toxic routes.
pub fn toxic_json(t: &ToxicSnapshot) -> String {
    let mut out = String::new();
    write_toxic(&mut out, t);
    out
}

/// GET /proxies/{proxy}/toxics.
pub fn toxics_json(toxics: &[ToxicSnapshot]) -> String {
    let mut out = String::new();
    write_toxics(&mut out, toxics);
    out
}

/// One proxy, as returned by the proxy routes.
pub fn proxy_json(p: &ProxySnapshot) -> String {
    let mut out = String::new();
    write_proxy(&mut out, p);
    out
}

/// GET /proxies: an object keyed by name, keys in byte order (as Go sorts map keys).
pub fn proxy_index_json(proxies: &[ProxySnapshot]) -> String {
    let mut sorted: Vec<&ProxySnapshot> = proxies.iter().collect();
    sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut out = String::from("{");
    for (i, p) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(&mut out, &p.name);
        out.push(':');
        write_proxy(&mut out, p);
    }
    out.push('}');
    out
}

/// The error object `{"error":"…","status":N}` (no trailing newline).
pub fn error_json(message: &str, status: u16) -> String {
    let mut out = String::from("{\"error\":");
    write_str(&mut out, message);
    out.push_str(",\"status\":");
    out.push_str(&status.to_string());
    out.push('}');
    out
}

/// The /populate response: `{"error":…,"status":…,"proxies":[…]|null}` with the error
/// members only when there is an error. No proxies (or an empty list) prints `null`.
pub fn populate_json(error: Option<(&str, u16)>, proxies: Option<&[ProxySnapshot]>) -> String {
    let mut out = String::from("{");
    if let Some((message, status)) = error {
        out.push_str("\"error\":");
        write_str(&mut out, message);
        out.push_str(",\"status\":");
        out.push_str(&status.to_string());
        out.push(',');
    }
    out.push_str("\"proxies\":");
    match proxies {
        Some(list) if !list.is_empty() => {
            out.push('[');
            for (i, p) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_proxy(&mut out, p);
            }
            out.push(']');
        }
        _ => out.push_str("null"),
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests;
