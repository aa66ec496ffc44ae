//! The `match` of an HTTP toxic: which requests it applies to (method, path glob, headers).

use std::collections::BTreeMap;

/// Conditions on a request; every given one must hold. An empty match matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpMatch {
    /// The request method, compared exactly (`POST`).
    pub method: Option<String>,
    /// A glob on the request path (without the query): `*` any run of characters
    /// (including `/`), `?` one character, `[abc]`, `[a-z]` and `[!a]` one character of
    /// (or not of) a set, `\` escapes the next character.
    pub path: Option<String>,
    /// Header name (case-insensitive) to the exact value one of its fields must have.
    pub headers: BTreeMap<String, String>,
}

impl HttpMatch {
    /// Checks the glob; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.path {
            if let Err(e) = glob_match(p.as_bytes(), b"") {
                return Err(format!("match.path is not a valid glob: {e}"));
            }
        }
        Ok(())
    }

    /// Whether a request with this method, path and headers (`lookup(name)` gives every
    /// value of a header, name lowercased) is matched.
    pub fn matches<'a, I>(&self, method: &str, path: &str, lookup: impl Fn(&str) -> I) -> bool
    where
        I: Iterator<Item = &'a [u8]>,
    {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        if let Some(glob) = &self.path {
            if !glob_match(glob.as_bytes(), path.as_bytes()).unwrap_or(false) {
                return false;
            }
        }
        self.headers.iter().all(|(name, want)| {
            let mut values = lookup(&name.to_ascii_lowercase());
            values.any(|v| v == want.as_bytes())
        })
    }
}

/// Matches `text` against `glob`. Errors on an unclosed `[` or a trailing `\`, whatever
/// the text (the whole glob is checked).
pub fn glob_match(glob: &[u8], text: &[u8]) -> Result<bool, &'static str> {
    check(glob)?;
    Ok(matches_from(glob, text))
}

fn check(glob: &[u8]) -> Result<(), &'static str> {
    let mut i = 0;
    while i < glob.len() {
        match glob[i] {
            b'\\' => {
                if i + 1 >= glob.len() {
                    return Err("trailing \\");
                }
                i += 2;
            }
            b'[' => match class_end(glob, i) {
                Some(end) => i = end,
                None => return Err("unclosed ["),
            },
            _ => i += 1,
        }
    }
    Ok(())
}

/// The index after the `]` closing the class that opens at `start`.
fn class_end(glob: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if glob.get(i) == Some(&b'!') {
        i += 1;
    }
    // A `]` right after the opening is a member.
    if glob.get(i) == Some(&b']') {
        i += 1;
    }
    while i < glob.len() {
        match glob[i] {
            b']' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

fn class_matches(class: &[u8], c: u8) -> bool {
    let (negate, body) = match class.first() {
        Some(b'!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut i = 0;
    let mut hit = false;
    while i < body.len() {
        let mut lo = body[i];
        if lo == b'\\' && i + 1 < body.len() {
            i += 1;
            lo = body[i];
        }
        if i + 2 < body.len() && body[i + 1] == b'-' {
            let hi = body[i + 2];
            hit |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
    hit != negate
}

/// Iterative glob matching with single-star backtracking (linear in practice, never
/// exponential).
fn matches_from(glob: &[u8], text: &[u8]) -> bool {
    let (mut g, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if g < glob.len() {
            match glob[g] {
                b'*' => {
                    star = Some((g + 1, t));
                    g += 1;
                    continue;
                }
                b'?' => {
                    g += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    let end = class_end(glob, g).unwrap_or(glob.len());
                    if class_matches(&glob[g + 1..end - 1], text[t]) {
                        g = end;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if g + 1 < glob.len() && glob[g + 1] == text[t] => {
                    g += 2;
                    t += 1;
                    continue;
                }
                b'\\' if g + 1 < glob.len() => {}
                c if c == text[t] => {
                    g += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sg, st)) => {
                g = sg;
                t = st + 1;
                star = Some((sg, st + 1));
            }
            None => return false,
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(g: &str, t: &str) -> bool {
        glob_match(g.as_bytes(), t.as_bytes()).unwrap()
    }

    #[test]
    fn globs() {
        assert!(m("/api/*", "/api/users/1"));
        assert!(m("/api/*", "/api/"));
        assert!(!m("/api/*", "/apx/1"));
        assert!(m("/a?c", "/abc"));
        assert!(!m("/a?c", "/ac"));
        assert!(m("*", ""));
        assert!(m("/v[12]/*", "/v2/x"));
        assert!(!m("/v[12]/*", "/v3/x"));
        assert!(m("/v[!1]", "/v3"));
        assert!(m("/[a-c]x", "/bx"));
        assert!(m("/\\*", "/*"));
        assert!(!m("/\\*", "/a"));
        assert!(m("*.json", "/a/b.json"));
        assert!(m("/a*b*c", "/aXXbYYc"));
        assert!(!m("/a*b*c", "/aXXbYY"));
        assert!(m("/exact", "/exact"));
        assert!(!m("/exact", "/exact/"));
    }

    #[test]
    fn bad_globs() {
        assert!(glob_match(b"/a[b", b"").is_err());
        assert!(glob_match(b"/a\\", b"").is_err());
        let bad = HttpMatch {
            path: Some("[".into()),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("match.path"));
    }

    #[test]
    fn all_conditions_must_hold() {
        let mut headers = BTreeMap::new();
        headers.insert("X-Test".to_string(), "1".to_string());
        let cond = HttpMatch {
            method: Some("POST".into()),
            path: Some("/api/*".into()),
            headers,
        };
        let h = |v: &'static [&'static [u8]]| {
            move |name: &str| {
                assert_eq!(name, "x-test");
                v.iter().copied()
            }
        };
        assert!(cond.matches("POST", "/api/x", h(&[b"0", b"1"])));
        assert!(!cond.matches("GET", "/api/x", h(&[b"1"])));
        assert!(!cond.matches("POST", "/other", h(&[b"1"])));
        assert!(!cond.matches("POST", "/api/x", h(&[b"2"])));
        assert!(HttpMatch::default().matches("GET", "/", |_| std::iter::empty()));
    }
}
