use super::*;
use crate::model::{AttrDef, AttrValue, Direction, Lit, ToxicDef};

fn err(body: &str) -> String {
    parse(body.as_bytes()).unwrap_err().0
}

fn obj(members: &[(&str, Json)]) -> Json {
    Json::Object(
        members
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn num(t: &str) -> Json {
    Json::Number(t.to_owned())
}

// ---- parsing ---------------------------------------------------------------------------

#[test]
fn parses_values_and_keeps_order_duplicates_and_number_text() {
    let v = parse(br#" {"b":1.50,"a":[true,false,null,"x"],"b":-0,"e":1E+3} "#).unwrap();
    assert_eq!(
        v,
        obj(&[
            ("b", num("1.50")),
            (
                "a",
                Json::Array(vec![
                    Json::Bool(true),
                    Json::Bool(false),
                    Json::Null,
                    Json::String("x".into())
                ])
            ),
            ("b", num("-0")),
            ("e", num("1E+3")),
        ])
    );
}

#[test]
fn only_the_first_value_is_read() {
    assert_eq!(parse(b"{} garbage").unwrap(), obj(&[]));
    assert_eq!(parse(b"[1]]]").unwrap(), Json::Array(vec![num("1")]));
    assert_eq!(parse(b"123abc").unwrap(), num("123"));
    assert_eq!(parse(b"01").unwrap(), num("0"));
    assert_eq!(parse(b"nullx").unwrap(), Json::Null);
    assert_eq!(parse(b"\"a\"\"b\"").unwrap(), Json::String("a".into()));
}

#[test]
fn eof_errors() {
    assert_eq!(err(""), "EOF");
    assert_eq!(err(" \r\n\t "), "EOF");
    for truncated in [
        "{\"name\":",
        "{",
        "[",
        "[1,",
        "\"abc",
        "tr",
        "-",
        "1.",
        "1e",
        "1e+",
        "{\"a\"",
        "{\"a\":1",
        "\"\\u12",
        "\"\\",
    ] {
        assert_eq!(err(truncated), "unexpected EOF", "{truncated:?}");
    }
    // A complete top-level number at the end is fine.
    assert_eq!(parse(b"12").unwrap(), num("12"));
}

#[test]
fn syntax_errors_read_like_go() {
    assert_eq!(
        err("x"),
        "invalid character 'x' looking for beginning of value"
    );
    assert_eq!(
        err("}"),
        "invalid character '}' looking for beginning of value"
    );
    assert_eq!(
        err("[1,]"),
        "invalid character ']' looking for beginning of value"
    );
    assert_eq!(err("{\"a\" 1}"), "invalid character '1' after object key");
    assert_eq!(
        err("{\"a\":1 2}"),
        "invalid character '2' after object key:value pair"
    );
    assert_eq!(
        err("{,"),
        "invalid character ',' looking for beginning of object key string"
    );
    assert_eq!(
        err("{\"a\":1,}"),
        "invalid character '}' looking for beginning of object key string"
    );
    assert_eq!(err("[1 2]"), "invalid character '2' after array element");
    assert_eq!(err("[01]"), "invalid character '1' after array element");
    assert_eq!(
        err("trux"),
        "invalid character 'x' in literal true (expecting 'e')"
    );
    assert_eq!(err("nul"), "unexpected EOF");
    assert_eq!(
        err("fx"),
        "invalid character 'x' in literal false (expecting 'a')"
    );
    assert_eq!(err("-x"), "invalid character 'x' in numeric literal");
    assert_eq!(
        err("1.x"),
        "invalid character 'x' after decimal point in numeric literal"
    );
    assert_eq!(
        err("1ex"),
        "invalid character 'x' in exponent of numeric literal"
    );
    assert_eq!(
        err("\"a\u{1}\""),
        "invalid character '\\x01' in string literal"
    );
    assert_eq!(err("\"a\nb\""), "invalid character '\\n' in string literal");
    assert_eq!(
        err("\"\\q\""),
        "invalid character 'q' in string escape code"
    );
    assert_eq!(
        err("\"\\u12x4\""),
        "invalid character 'x' in \\u hexadecimal character escape"
    );
    assert_eq!(
        err("'a'"),
        "invalid character '\\'' looking for beginning of value"
    );
    assert_eq!(
        err("<"),
        "invalid character '<' looking for beginning of value"
    );
    assert_eq!(
        err("\\"),
        "invalid character '\\\\' looking for beginning of value"
    );
    assert_eq!(
        parse(b"\xff").unwrap_err().0,
        "invalid character '\u{ff}' looking for beginning of value"
    );
    assert_eq!(
        parse(b"\x80").unwrap_err().0,
        "invalid character '\\u0080' looking for beginning of value"
    );
}

#[test]
fn strings_unquote_like_go() {
    let s = |t: &str| match &parse(t.as_bytes()).unwrap() {
        Json::String(s) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(s(r#""a\"\\\/\b\f\n\r\t""#), "a\"\\/\u{8}\u{c}\n\r\t");
    assert_eq!(s(r#""\u00e9\u2028""#), "é\u{2028}");
    assert_eq!(s(r#""\ud83d\ude00""#), "😀");
    // Lone or broken surrogates become U+FFFD; the following escape is kept.
    assert_eq!(s(r#""\ud83dx""#), "\u{fffd}x");
    assert_eq!(s(r#""\ude00\u0041""#), "\u{fffd}A");
    assert_eq!(s(r#""\ud83d\u0041""#), "\u{fffd}A");
    assert_eq!(s("\"héllo\""), "héllo");
    assert_eq!(
        parse(b"\"\xff\"").unwrap_err().0,
        "invalid UTF-8 in string literal"
    );
}

#[test]
fn depth_is_bounded_and_deep_documents_do_not_overflow() {
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert!(parse(ok.as_bytes()).is_ok());
    let too_deep = "[".repeat(MAX_DEPTH + 1);
    assert_eq!(err(&too_deep), "invalid character '[' exceeded max depth");
    let objs = "{\"a\":".repeat(MAX_DEPTH + 1);
    assert_eq!(err(&objs), "invalid character '{' exceeded max depth");
    // Deep but truncated: the half-built frames are torn down without recursion.
    let truncated = "{\"a\":[".repeat(MAX_DEPTH / 2);
    assert_eq!(err(&truncated), "unexpected EOF");
    // Dropping a fully built deep tree on a small stack.
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let v = parse(ok.as_bytes()).unwrap();
            drop(v);
        })
        .unwrap()
        .join()
        .unwrap();
}

// ---- typed decoding --------------------------------------------------------------------

#[test]
fn proxy_keys_are_case_insensitive_and_last_wins() {
    let f = decode_proxy(
        br#"{"NAME":"a","UpStream":"u","name":"b","Listen":"l","ENABLED":false,"toxics":[1]}"#,
    )
    .unwrap();
    assert_eq!(
        f,
        ProxyFields {
            protocol: None,
            name: Some("b".into()),
            listen: Some("l".into()),
            upstream: Some("u".into()),
            enabled: Some(false),
        }
    );
    // null keeps what is there.
    let f = decode_proxy(br#"{"name":"a","name":null,"enabled":false,"enabled":null}"#).unwrap();
    assert_eq!(f.name.as_deref(), Some("a"));
    assert_eq!(f.enabled, Some(false));
    // Go folds the long s and the Kelvin sign onto ASCII letters.
    let f = decode_proxy("{\"\u{17f}tream\":1,\"up\u{17f}tream\":\"x\"}".as_bytes()).unwrap();
    assert_eq!(f.upstream.as_deref(), Some("x"));
    assert_eq!(decode_proxy(b"null").unwrap(), ProxyFields::default());
    assert_eq!(decode_proxy(b"{}").unwrap(), ProxyFields::default());
}

#[test]
fn proxy_type_errors() {
    let e = |b: &str| decode_proxy(b.as_bytes()).unwrap_err().0;
    assert_eq!(
        e(r#"{"name":5}"#),
        "json: cannot unmarshal number into Go struct field Proxy.name of type string"
    );
    assert_eq!(
        e(r#"{"listen":true}"#),
        "json: cannot unmarshal bool into Go struct field Proxy.listen of type string"
    );
    assert_eq!(
        e(r#"{"upstream":{}}"#),
        "json: cannot unmarshal object into Go struct field Proxy.upstream of type string"
    );
    assert_eq!(
        e(r#"{"enabled":"yes"}"#),
        "json: cannot unmarshal string into Go struct field Proxy.enabled of type bool"
    );
    assert_eq!(
        e(r#"{"logger":1}"#),
        "json: cannot unmarshal number into Go struct field Proxy.Logger of type zerolog.Logger"
    );
    assert!(decode_proxy(br#"{"Logger":{"x":1}}"#).is_ok());
    assert_eq!(
        e("5"),
        "json: cannot unmarshal number into Go value of type toxiproxy.Proxy"
    );
    assert_eq!(
        e("[]"),
        "json: cannot unmarshal array into Go value of type toxiproxy.Proxy"
    );
    // Syntax errors win over type errors anywhere in the value.
    assert_eq!(
        e(r#"{"name":5,"x":}"#),
        "invalid character '}' looking for beginning of value"
    );
    // The first type error in document order is reported.
    assert_eq!(
        e(r#"{"listen":1,"name":2}"#),
        "json: cannot unmarshal number into Go struct field Proxy.listen of type string"
    );
}

#[test]
fn populate_decoding() {
    assert_eq!(decode_populate(b"null").unwrap(), vec![]);
    assert_eq!(decode_populate(b"[]").unwrap(), vec![]);
    let v = decode_populate(
        br#"[{"name":"a","upstream":"u","enabled":false,"enabled":null},null,{"Name":"b","enabled":false,"listen":"l"}]"#,
    )
    .unwrap();
    let input = |name: &str, listen: &str, upstream: &str, enabled: bool| ProxyInput {
        protocol: Default::default(),
        name: name.into(),
        listen: listen.into(),
        upstream: upstream.into(),
        enabled,
    };
    assert_eq!(
        v,
        vec![
            input("a", "", "u", true), // a later null resets the *bool to "default true"
            input("", "", "", true),
            input("b", "l", "", false),
        ]
    );
    let e = |b: &str| decode_populate(b.as_bytes()).unwrap_err().0;
    assert_eq!(
        e("{}"),
        "json: cannot unmarshal object into Go value of type []struct { toxiproxy.Proxy; Enabled *bool \"json:\\\"enabled\\\"\" }"
    );
    assert_eq!(
        e("[5]"),
        "json: cannot unmarshal number into Go value of type struct { toxiproxy.Proxy; Enabled *bool \"json:\\\"enabled\\\"\" }"
    );
    assert_eq!(
        e(r#"[{"name":1}]"#),
        "json: cannot unmarshal number into Go struct field .name of type string"
    );
    assert_eq!(
        e(r#"[{"enabled":1}]"#),
        "json: cannot unmarshal number into Go struct field .enabled of type bool"
    );
    assert_eq!(e("[{"), "unexpected EOF");
}

fn create(body: &str) -> Result<ToxicCreate, String> {
    decode_toxic_create(body.as_bytes()).map_err(|e| e.0)
}

#[test]
fn toxic_create_wrapper_fields() {
    let c = create(r#"{"Name":"t7","TYPE":"latency","Stream":"UpStream","toxicity":0.5,"attributes":{"latency":"x"}}"#).unwrap();
    assert_eq!(c.name.as_deref(), Some("t7"));
    assert_eq!(c.type_name.as_deref(), Some("latency"));
    assert_eq!(c.stream.as_deref(), Some("UpStream"));
    assert_eq!(c.toxicity, Some(0.5));
    let c = create("null").unwrap();
    assert_eq!(
        (c.name, c.type_name, c.stream, c.toxicity),
        (None, None, None, None)
    );
    assert_eq!(create(r#"{"stream":null}"#).unwrap().stream, None);
    assert_eq!(
        create(r#"{"stream":""}"#).unwrap().stream.as_deref(),
        Some("")
    );
}

#[test]
fn toxic_create_wrapper_errors() {
    let e = |b: &str| create(b).unwrap_err();
    assert_eq!(
        e(r#"{"attributes":5}"#),
        "json: cannot unmarshal number into Go struct field ToxicWrapper.attributes of type toxics.NoopToxic"
    );
    assert_eq!(
        e(r#"{"attributes":[]}"#),
        "json: cannot unmarshal array into Go struct field ToxicWrapper.attributes of type toxics.NoopToxic"
    );
    assert_eq!(
        e(r#"{"attributes":null,"attributes":{}}"#),
        "json: cannot unmarshal object into Go struct field ToxicWrapper.attributes of type toxics.Toxic"
    );
    assert_eq!(
        e(r#"{"toxicity":"1"}"#),
        "json: cannot unmarshal string into Go struct field ToxicWrapper.toxicity of type float32"
    );
    assert_eq!(
        e(r#"{"toxicity":1e40}"#),
        "json: cannot unmarshal number 1e40 into Go struct field ToxicWrapper.toxicity of type float32"
    );
    assert_eq!(
        e(r#"{"name":1}"#),
        "json: cannot unmarshal number into Go struct field ToxicWrapper.name of type string"
    );
    assert_eq!(
        e(r#"{"type":false}"#),
        "json: cannot unmarshal bool into Go struct field ToxicWrapper.type of type string"
    );
    assert_eq!(
        e(r#"{"stream":[]}"#),
        "json: cannot unmarshal array into Go struct field ToxicWrapper.stream of type string"
    );
    assert_eq!(
        e("\"x\""),
        "json: cannot unmarshal string into Go value of type toxics.ToxicWrapper"
    );
    assert_eq!(e(""), "EOF");
}

fn attrs(body: &str, ty: &str) -> Result<ToxicKind, String> {
    let c = create(body)?;
    let mut kind = crate::toxics::default_for(ty).unwrap();
    c.decode_attributes(&mut kind).map_err(|e| e.0)?;
    Ok(kind)
}

#[test]
fn toxic_create_attributes() {
    assert_eq!(
        attrs(
            r#"{"attributes":{"Latency":7,"JITTER":2,"foo":"bar"}}"#,
            "latency"
        )
        .unwrap(),
        crate::toxics::kind("latency")
            .with("latency", 7)
            .with("jitter", 2)
    );
    assert_eq!(
        attrs(r#"{"attributes":{"jitter":3}}"#, "latency").unwrap(),
        crate::toxics::kind("latency")
            .with("latency", 0)
            .with("jitter", 3)
    );
    // Repeated attribute objects merge; null values keep the default.
    assert_eq!(
        attrs(
            r#"{"attributes":{"latency":1},"attributes":{"jitter":2,"latency":null}}"#,
            "latency"
        )
        .unwrap(),
        crate::toxics::kind("latency")
            .with("latency", 1)
            .with("jitter", 2)
    );
    // After `attributes: null` later objects no longer reach the toxic (as in Go).
    assert_eq!(
        attrs(
            r#"{"attributes":{"latency":1},"attributes":null}"#,
            "latency"
        )
        .unwrap(),
        crate::toxics::kind("latency")
            .with("latency", 1)
            .with("jitter", 0)
    );
    assert_eq!(
        attrs(r#"{"attributes":null}"#, "slow_close").unwrap(),
        crate::toxics::kind("slow_close").with("delay", 0)
    );
    assert_eq!(
        attrs(
            r#"{"attributes":{"latency":9223372036854775807}}"#,
            "latency"
        )
        .unwrap(),
        crate::toxics::kind("latency")
            .with("latency", i64::MAX)
            .with("jitter", 0)
    );
    assert_eq!(
        attrs(r#"{"attributes":{"timeout":-1}}"#, "timeout").unwrap(),
        crate::toxics::kind("timeout").with("timeout", -1)
    );
    assert_eq!(
        attrs(r#"{"attributes":{"x":1}}"#, "noop").unwrap(),
        crate::toxics::kind("noop")
    );
}

#[test]
fn toxic_attribute_errors() {
    let e = |b: &str, ty: &str| attrs(b, ty).unwrap_err();
    assert_eq!(
        e(r#"{"attributes":{"latency":"abc"}}"#, "latency"),
        "json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type int64"
    );
    assert_eq!(
        e(r#"{"attributes":{"latency":1.5}}"#, "latency"),
        "json: cannot unmarshal number 1.5 into Go struct field LatencyToxic.attributes.latency of type int64"
    );
    assert_eq!(
        e(r#"{"attributes":{"rate":1e3}}"#, "bandwidth"),
        "json: cannot unmarshal number 1e3 into Go struct field BandwidthToxic.attributes.rate of type int64"
    );
    assert_eq!(
        e(r#"{"attributes":{"bytes":9223372036854775808}}"#, "limit_data"),
        "json: cannot unmarshal number 9223372036854775808 into Go struct field LimitDataToxic.attributes.bytes of type int64"
    );
    assert_eq!(
        e(r#"{"attributes":{"Average_Size":true}}"#, "slicer"),
        "json: cannot unmarshal bool into Go struct field SlicerToxic.attributes.average_size of type int"
    );
    assert_eq!(
        e(r#"{"attributes":{"timeout":[]}}"#, "reset_peer"),
        "json: cannot unmarshal array into Go struct field ResetToxic.attributes.timeout of type int64"
    );
}

fn snapshot() -> ToxicSnapshot {
    ToxicSnapshot {
        matcher: None,
        name: "lat".into(),
        stream: "downstream".into(),
        direction: Direction::Downstream,
        toxicity: 1.0,
        kind: crate::toxics::kind("latency")
            .with("latency", 250)
            .with("jitter", 10),
        schedule: None,
        clients: None,
    }
}

fn update(body: &str) -> Result<ToxicSnapshot, String> {
    let mut t = snapshot();
    decode_toxic_update(body.as_bytes())
        .map_err(|e| e.0)?
        .apply(&mut t)
        .map_err(|e| e.0)?;
    Ok(t)
}

#[test]
fn toxic_update_merges_and_ignores_identity() {
    let t = update(r#"{"attributes":{"jitter":5},"name":"x","type":"noop","stream":"upstream"}"#)
        .unwrap();
    assert_eq!(
        t.kind,
        crate::toxics::kind("latency")
            .with("latency", 250)
            .with("jitter", 5)
    );
    assert_eq!(
        (t.name.as_str(), t.stream.as_str(), t.toxicity),
        ("lat", "downstream", 1.0)
    );
    let t = update(r#"{"toxicity":0.5}"#).unwrap();
    assert_eq!(t.toxicity, 0.5);
    assert_eq!(
        t.kind,
        crate::toxics::kind("latency")
            .with("latency", 250)
            .with("jitter", 10)
    );
    assert_eq!(update("null").unwrap(), snapshot());
    assert_eq!(update("{}").unwrap(), snapshot());
    assert_eq!(update(r#"{"toxicity":null}"#).unwrap(), snapshot());
    // Values after `attributes: null` are ignored, whatever their type.
    assert_eq!(
        update(r#"{"attributes":null,"attributes":5}"#).unwrap(),
        snapshot()
    );
}

#[test]
fn toxic_update_errors() {
    let e = |b: &str| update(b).unwrap_err();
    assert_eq!(e(""), "EOF");
    assert_eq!(
        e(r#"{"attributes":{"latency":"1"}}"#),
        "json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type int64"
    );
    assert_eq!(
        e(r#"{"attributes":5}"#),
        "json: cannot unmarshal number into Go struct field .attributes of type toxics.LatencyToxic"
    );
    assert_eq!(
        e(r#"{"toxicity":true}"#),
        "json: cannot unmarshal bool into Go struct field .toxicity of type float32"
    );
    assert_eq!(
        e("[]"),
        "json: cannot unmarshal array into Go value of type struct { Attributes interface {} \"json:\\\"attributes\\\"\"; Toxicity float32 \"json:\\\"toxicity\\\"\" }"
    );
}

// ---- encoding --------------------------------------------------------------------------

#[test]
fn strings_are_escaped_like_go() {
    assert_eq!(quote("plain"), r#""plain""#);
    assert_eq!(quote("<a>&b"), r#""\u003ca\u003e\u0026b""#);
    assert_eq!(quote("q\"b\\"), r#""q\"b\\""#);
    assert_eq!(
        quote("\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}"),
        "\"\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}\""
    );
    assert_eq!(quote("\u{2028}\u{2029}é😀"), "\"\\u2028\\u2029é😀\"");
    assert_eq!(quote("it's"), "\"it's\"");
}

#[test]
fn float32_formatting_matches_go() {
    let cases: &[(f32, &str)] = &[
        (1.0, "1"),
        (0.0, "0"),
        (-0.0, "-0"),
        (0.5, "0.5"),
        (0.3, "0.3"),
        (0.99, "0.99"),
        (0.1, "0.1"),
        (5.0, "5"),
        (-1.0, "-1"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (1e-10, "1e-10"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (3.4028235e38, "3.4028235e+38"),
        (16777216.0, "16777216"),
        (123.456, "123.456"),
    ];
    for (f, want) in cases {
        assert_eq!(format_f32(*f), *want, "{f:?}");
    }
    // What the API stores for a request's literal prints back the same.
    for lit in ["0.3", "0.99", "0.7", "0.01", "1e-7", "0.333"] {
        let f: f32 = lit.parse().unwrap();
        let back: f32 = format_f32(f).parse().unwrap();
        assert_eq!(back, f);
    }
}

fn proxy() -> ProxySnapshot {
    ProxySnapshot {
        protocol: Default::default(),
        name: "web<1>".into(),
        listen: "127.0.0.1:8080".into(),
        upstream: "localhost:80".into(),
        enabled: true,
        toxics: vec![
            ToxicSnapshot {
                matcher: None,
                name: "bandwidth_UpStream".into(),
                stream: "UpStream".into(),
                direction: Direction::Upstream,
                toxicity: 0.3,
                kind: crate::toxics::kind("bandwidth").with("rate", 100),
                schedule: None,
                clients: None,
            },
            snapshot(),
            ToxicSnapshot {
                matcher: None,
                name: "noop_downstream".into(),
                stream: "downstream".into(),
                direction: Direction::Downstream,
                toxicity: 1e-7,
                kind: crate::toxics::kind("noop"),
                schedule: None,
                clients: None,
            },
        ],
    }
}

#[test]
fn proxy_and_toxic_shapes() {
    assert_eq!(
        toxic_json(&snapshot()),
        r#"{"attributes":{"latency":250,"jitter":10},"name":"lat","type":"latency","stream":"downstream","toxicity":1}"#
    );
    let slicer = ToxicSnapshot {
        matcher: None,
        kind: crate::toxics::kind("slicer")
            .with("average_size", 10)
            .with("size_variation", 5)
            .with("delay", 20000),
        ..snapshot()
    };
    assert!(toxic_json(&slicer)
        .starts_with(r#"{"attributes":{"average_size":10,"size_variation":5,"delay":20000},"#));
    assert_eq!(
        proxy_json(&proxy()),
        concat!(
            r#"{"name":"web\u003c1\u003e","listen":"127.0.0.1:8080","upstream":"localhost:80","enabled":true,"Logger":{},"toxics":["#,
            r#"{"attributes":{"rate":100},"name":"bandwidth_UpStream","type":"bandwidth","stream":"UpStream","toxicity":0.3},"#,
            r#"{"attributes":{"latency":250,"jitter":10},"name":"lat","type":"latency","stream":"downstream","toxicity":1},"#,
            r#"{"attributes":{},"name":"noop_downstream","type":"noop","stream":"downstream","toxicity":1e-7}]}"#
        )
    );
    let empty = ProxySnapshot {
        protocol: Default::default(),
        toxics: vec![],
        enabled: false,
        ..proxy()
    };
    assert!(proxy_json(&empty).ends_with(r#""enabled":false,"Logger":{},"toxics":[]}"#));
    assert_eq!(toxics_json(&[]), "[]");
}

#[test]
fn index_populate_and_error_shapes() {
    assert_eq!(proxy_index_json(&[]), "{}");
    let b = ProxySnapshot {
        protocol: Default::default(),
        name: "b".into(),
        toxics: vec![],
        ..proxy()
    };
    let z = ProxySnapshot {
        protocol: Default::default(),
        name: "Z".into(),
        toxics: vec![],
        ..proxy()
    };
    let idx = proxy_index_json(&[b.clone(), z.clone()]);
    assert!(idx.starts_with(r#"{"Z":{"name":"Z","#), "{idx}");
    assert!(idx.contains(r#"},"b":{"name":"b","#), "{idx}");
    assert_eq!(
        error_json("proxy not found", 404),
        r#"{"error":"proxy not found","status":404}"#
    );
    assert_eq!(
        error_json("a<b", 400),
        r#"{"error":"a\u003cb","status":400}"#
    );
    assert_eq!(populate_json(None, None), r#"{"proxies":null}"#);
    assert_eq!(populate_json(None, Some(&[])), r#"{"proxies":null}"#);
    assert_eq!(
        populate_json(Some(("boom", 500)), None),
        r#"{"error":"boom","status":500,"proxies":null}"#
    );
    let one = populate_json(Some(("boom", 500)), Some(std::slice::from_ref(&b)));
    assert!(
        one.starts_with(r#"{"error":"boom","status":500,"proxies":[{"name":"b","#),
        "{one}"
    );
    assert!(populate_json(None, Some(&[b, z])).starts_with(r#"{"proxies":[{"name":"b""#));
}

/// Random and mutated inputs never panic any decoder.
#[test]
fn decoders_never_panic() {
    let seeds: &[&[u8]] = &[
        br#"{"name":"a","listen":"127.0.0.1:0","upstream":"x:1","enabled":true}"#,
        br#"[{"name":"a","upstream":"u","enabled":null},null]"#,
        br#"{"name":"t","type":"latency","stream":"UpStream","toxicity":0.5,"attributes":{"latency":1,"jitter":2}}"#,
        br#"{"attributes":{"average_size":10},"toxicity":1e-7}"#,
        b"\"\\ud83d\\ude00\\u00e9\\n\"",
        b"[[[[{\"a\":[1,2,{\"b\":null}]}]]]]",
    ];
    let alphabet = b"{}[]:,\"\\/ -+.eE0123456789tfnulrsabcxyz\x00\x1f\x7f\xc3\xa9\xff\xed\xa0\x80";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..20_000 {
        let mut input: Vec<u8> = seeds[round % seeds.len()].to_vec();
        for _ in 0..(next() % 6) {
            let at = (next() as usize) % (input.len() + 1);
            match next() % 3 {
                0 if at < input.len() => {
                    input.remove(at);
                }
                1 if at < input.len() => input[at] = alphabet[(next() as usize) % alphabet.len()],
                _ => input.insert(at, alphabet[(next() as usize) % alphabet.len()]),
            }
        }
        if round % 10 == 0 {
            input = (0..(next() % 40))
                .map(|_| alphabet[(next() as usize) % alphabet.len()])
                .collect();
        }
        let _ = parse(&input);
        let _ = decode_proxy(&input);
        let _ = decode_populate(&input);
        if let Ok(c) = decode_toxic_create(&input) {
            for ty in crate::toxics::type_names() {
                let mut kind = crate::toxics::default_for(ty).unwrap();
                let _ = c.decode_attributes(&mut kind);
            }
        }
        if let Ok(u) = decode_toxic_update(&input) {
            let mut t = snapshot();
            let _ = u.apply(&mut t);
        }
    }
}

/// A declaration with one attribute of every kind the framework types, the way upcoming
/// toxics declare theirs: each attribute is one line.
static TYPED: ToxicDef = ToxicDef::new("typed", "TypedToxic").attrs(&[
    AttrDef::int("status")
        .default(Lit::Int(503))
        .between(100, 599),
    AttrDef::float("loss_rate").between_f(0.0, 1.0),
    AttrDef::one_of("mode", &["drop", "retransmit"]),
    AttrDef::one_of("distribution", &["uniform", "normal"]).when_set(),
    AttrDef::float("correlation").when_set(),
    AttrDef::string("body"),
    AttrDef::map("headers"),
]);

fn typed(body: &str) -> Result<ToxicKind, String> {
    let c = create(body)?;
    let mut kind = ToxicKind::new(&TYPED);
    c.decode_attributes(&mut kind).map_err(|e| e.0)?;
    Ok(kind)
}

fn typed_json(kind: ToxicKind) -> String {
    toxic_json(&ToxicSnapshot {
        matcher: None,
        name: "t".into(),
        stream: "downstream".into(),
        direction: Direction::Downstream,
        toxicity: 1.0,
        kind,
        schedule: None,
        clients: None,
    })
}

#[test]
fn typed_attributes_defaults_and_when_set() {
    let kind = typed("{}").unwrap();
    assert_eq!(kind.validate(), Ok(()));
    assert_eq!(
        typed_json(kind),
        r#"{"attributes":{"status":503,"loss_rate":0,"mode":"drop","body":"","headers":{}},"name":"t","type":"typed","stream":"downstream","toxicity":1}"#
    );
    let kind = typed(
        r#"{"attributes":{"loss_rate":0.25,"Distribution":"normal","correlation":1e-7,
            "body":"<b>","headers":{"X-B":"2","X-A":"1"}}}"#,
    )
    .unwrap();
    assert_eq!(
        typed_json(kind),
        r#"{"attributes":{"status":503,"loss_rate":0.25,"mode":"drop","distribution":"normal","correlation":1e-7,"body":"\u003cb\u003e","headers":{"X-A":"1","X-B":"2"}},"name":"t","type":"typed","stream":"downstream","toxicity":1}"#
    );
    // Maps merge key by key; null keeps a value.
    let kind = typed(
        r#"{"attributes":{"headers":{"a":"1"},"status":null},"attributes":{"headers":{"b":"2"}}}"#,
    )
    .unwrap();
    assert_eq!(kind.int("status"), 503);
    assert_eq!(
        kind.get("headers"),
        Some(&AttrValue::Map(
            [("a".into(), "1".into()), ("b".into(), "2".into())].into()
        ))
    );
}

#[test]
fn typed_attribute_errors_and_ranges() {
    let e = |body: &str| typed(body).unwrap_err();
    assert_eq!(
        e(r#"{"attributes":{"loss_rate":"x"}}"#),
        "json: cannot unmarshal string into Go struct field TypedToxic.attributes.loss_rate of type float64"
    );
    assert_eq!(
        e(r#"{"attributes":{"loss_rate":1e999}}"#),
        "json: cannot unmarshal number 1e999 into Go struct field TypedToxic.attributes.loss_rate of type float64"
    );
    assert_eq!(
        e(r#"{"attributes":{"mode":1}}"#),
        "json: cannot unmarshal number into Go struct field TypedToxic.attributes.mode of type string"
    );
    assert_eq!(
        e(r#"{"attributes":{"headers":[]}}"#),
        "json: cannot unmarshal array into Go struct field TypedToxic.attributes.headers of type map[string]string"
    );
    assert_eq!(
        e(r#"{"attributes":{"headers":{"a":1}}}"#),
        "json: cannot unmarshal number into Go struct field TypedToxic.attributes.headers of type string"
    );
    let v = |body: &str| typed(body).unwrap().validate();
    assert_eq!(
        v(r#"{"attributes":{"status":99}}"#),
        Err("status must be between 100 and 599".into())
    );
    assert_eq!(
        v(r#"{"attributes":{"loss_rate":1.5}}"#),
        Err("loss_rate must be between 0 and 1".into())
    );
    assert_eq!(
        v(r#"{"attributes":{"mode":"keep"}}"#),
        Err("mode must be one of drop, retransmit".into())
    );
    assert_eq!(
        v(r#"{"attributes":{"distribution":"pareto"}}"#),
        Err("distribution must be one of uniform, normal".into())
    );
}

#[test]
fn set_checks_names_and_types() {
    let mut kind = ToxicKind::new(&TYPED);
    assert_eq!(kind.set("status", 200), Ok(()));
    assert_eq!(kind.int("status"), 200);
    assert!(kind.set("nope", 1).is_err());
    assert!(kind.set("status", "x").is_err());
    assert_eq!(kind.set("correlation", 0.5), Ok(()));
    assert_eq!(kind.float("correlation"), 0.5);
}

#[test]
fn every_catalog_type_has_help_and_distinct_names() {
    let mut names: Vec<&str> = crate::toxics::type_names().collect();
    let count = names.len();
    assert!(count >= 9, "{names:?}");
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count);
    for t in crate::toxics::CATALOG {
        assert!(!t.def.summary.is_empty(), "{}", t.def.name);
        for a in t.def.attrs {
            assert!(!a.unit.is_empty() && !a.help.is_empty(), "{}", a.name);
        }
    }
}
