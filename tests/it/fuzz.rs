//! Property-based fuzzing of the JSON decoding, toxic parameter validation and the toxic
//! state machines. The default case count keeps CI short; for a longer local run:
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test --release --test it fuzz
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use tokio::time::Instant;
use toxi::model::json;
use toxi::model::{Direction, ToxicKind};
use toxi::registry::ToxicSnapshot;
use toxi::toxics::{self, Chunk, Item, Poll};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// JSON-looking text: real structure with hostile leaves and case-mangled keys.
fn json_text() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "name",
        "NAME",
        "Name",
        "type",
        "TYPE",
        "stream",
        "Stream",
        "toxicity",
        "attributes",
        "Attributes",
        "listen",
        "upstream",
        "enabled",
        "latency",
        "jitter",
        "rate",
        "delay",
        "timeout",
        "average_size",
        "size_variation",
        "bytes",
        "\u{212a}ey",
        "",
    ]);
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        Just("9223372036854775808".to_string()),
        Just("-0".to_string()),
        Just("1e400".to_string()),
        Just("0.5".to_string()),
        prop::sample::select(toxics::type_names().collect::<Vec<_>>())
            .prop_map(|t| format!("\"{t}\"")),
        prop::sample::select(vec!["upstream", "DOWNSTREAM", "", "x"])
            .prop_map(|s| format!("\"{s}\"")),
        "[^\"\\\\]{0,12}".prop_map(|s| format!("\"{s}\"")),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| {
                let members: Vec<String> = kv
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

fn exercise_decoders(body: &[u8]) {
    let _ = json::parse(body);
    let _ = json::decode_proxy(body);
    let _ = json::decode_populate(body);
    if let Ok(create) = json::decode_toxic_create(body) {
        for t in toxics::type_names() {
            let mut kind = toxics::default_for(t).unwrap();
            if create.decode_attributes(&mut kind).is_ok() {
                check_kind(&kind);
            }
        }
    }
    if let Ok(update) = json::decode_toxic_update(body) {
        for t in toxics::type_names() {
            let mut snapshot = ToxicSnapshot {
                matcher: None,
                name: "t".into(),
                stream: "upstream".into(),
                direction: Direction::Upstream,
                toxicity: 1.0,
                kind: toxics::default_for(t).unwrap(),
                schedule: None,
                clients: None,
            };
            if update.apply(&mut snapshot).is_ok() {
                check_kind(&snapshot.kind);
                let _ = json::toxic_json(&snapshot);
            }
        }
    }
}

/// A kind that validates must run without panicking on arbitrary traffic.
fn check_kind(kind: &ToxicKind) {
    if kind.validate().is_ok() {
        run_toxic(kind, &[(0, 100), (5, 1), (1000, 32 * 1024)], 7);
    }
}

/// Drives one toxic over timed inputs like a link would; returns the bytes it emitted
/// (plus whatever a final drain returns) and whether it asked to close.
fn run_toxic(kind: &ToxicKind, inputs: &[(u64, usize)], seed: u64) -> (Vec<u8>, bool) {
    let t0 = Instant::now();
    let mut toxic = toxics::build(kind, toxics::ToxicRng::new(seed), t0);
    let mut pending: VecDeque<Item> = VecDeque::new();
    let mut next_byte = 0u8;
    let mut now = t0;
    for &(gap_ms, len) in inputs {
        now += Duration::from_millis(gap_ms);
        let data: Vec<u8> = (0..len)
            .map(|_| {
                next_byte = next_byte.wrapping_add(1);
                next_byte
            })
            .collect();
        pending.push_back(Item::Data(Chunk {
            data: Bytes::from(data),
            ts: now,
        }));
    }
    pending.push_back(Item::Eof);
    let mut out = Vec::new();
    let total: usize = inputs.iter().map(|i| i.1).sum();
    for _ in 0..(4 * total + 10_000) {
        if toxic.can_accept() {
            if let Some(item) = pending.pop_front() {
                toxic.push(item, now);
                continue;
            }
        }
        match toxic.poll(now) {
            Poll::Ready(Item::Data(c)) => out.extend_from_slice(&c.data),
            Poll::Ready(Item::Eof) => return (out, false),
            Poll::Close(_) => return (out, true),
            // Jump the clock forward a bounded step, like a timer firing.
            Poll::Wait(t) => now = t.min(now + Duration::from_secs(3600)),
            Poll::Idle => {
                if pending.is_empty() {
                    break;
                }
                now += Duration::from_millis(1);
            }
        }
    }
    for item in toxic.drain() {
        if let Item::Data(c) = item {
            out.extend_from_slice(&c.data);
        }
    }
    (out, false)
}

fn expected_bytes(inputs: &[(u64, usize)]) -> Vec<u8> {
    let total: usize = inputs.iter().map(|i| i.1).sum();
    let mut b = 0u8;
    (0..total)
        .map(|_| {
            b = b.wrapping_add(1);
            b
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise_decoders(&body);
    }

    #[test]
    fn json_like_bodies_never_panic(body in json_text()) {
        exercise_decoders(body.as_bytes());
    }

    /// Pass-through toxics lose, duplicate and reorder nothing, whatever their values.
    #[test]
    fn lossless_toxics_keep_every_byte_in_order(
        latency in any::<i64>(), jitter in any::<i64>(), avg in 1i64..4096, var_frac in 0.0f64..=1.0,
        delay in -10i64..100_000, rate in 1i64..i64::MAX, seed in any::<u64>(),
        inputs in prop::collection::vec((0u64..50, 0usize..40_000), 1..12),
    ) {
        let kinds = [
            toxi::toxics::kind("latency").with("latency", latency).with("jitter", jitter),
            toxi::toxics::kind("slicer").with("average_size", avg).with("size_variation", (avg as f64 * var_frac) as i64).with("delay", delay),
            toxi::toxics::kind("bandwidth").with("rate", rate),
            toxi::toxics::kind("noop"),
            toxi::toxics::kind("slow_close").with("delay", delay.max(0) % 1000),
            toxi::toxics::kind("limit_data").with("bytes", i64::MAX),
            toxi::toxics::kind("latency").with("latency", latency % 100_000).with("jitter", jitter % 100_000)
                .with("distribution", "paretonormal").with("correlation", var_frac * 100.0),
            toxi::toxics::kind("packet_loss").with("loss_rate", var_frac * 0.5).with("mode", "retransmit")
                .with("mss", avg).with("rto", delay.clamp(1, 1000)),
            toxi::toxics::kind("bandwidth").with("rate", rate).with("scope", "proxy"),
        ];
        let want = expected_bytes(&inputs);
        for kind in &kinds {
            prop_assert!(kind.validate().is_ok(), "{:?}", kind);
            let (out, _) = run_toxic(kind, &inputs, seed);
            let first_diff = out.iter().zip(&want).position(|(a, b)| a != b);
            prop_assert!(
                out.len() == want.len() && first_diff.is_none(),
                "{:?}: {} of {} bytes, first difference at {:?}", kind, out.len(), want.len(), first_diff
            );
        }
    }

    /// Every toxic with any validated values runs without panicking.
    #[test]
    fn any_values_never_panic(
        a in any::<i64>(), b in any::<i64>(), c in any::<i64>(), seed in any::<u64>(),
        inputs in prop::collection::vec((0u64..5000, 0usize..6_000), 0..5),
    ) {
        for t in toxics::type_names() {
            let mut kind = toxics::default_for(t).unwrap();
            for (attr, v) in kind.def().attrs.iter().zip([a, b, c, a ^ c, b ^ c]) {
                match attr.ty {
                    toxi::model::AttrType::Int { .. } => kind.set(attr.name, v).unwrap(),
                    // A float in [-1, 1] (0-1 ranges validate about half the time) or x 100.
                    toxi::model::AttrType::Float => {
                        let f = v as f64 / i64::MAX as f64;
                        kind.set(attr.name, if v % 2 == 0 { f } else { f * 100.0 }).unwrap()
                    }
                    toxi::model::AttrType::Enum(words) => kind
                        .set(attr.name, words[(v.unsigned_abs() % words.len() as u64) as usize])
                        .unwrap(),
                    _ => {}
                }
            }
            if kind.validate().is_ok() {
                let (out, _) = run_toxic(&kind, &inputs, seed);
                prop_assert!(out.len() <= expected_bytes(&inputs).len());
            }
        }
    }
}
