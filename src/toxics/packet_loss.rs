//! `packet_loss`: loses data as a lossy network does, in one of two modes.
//!
//! Loss draws follow Toxiproxy's `packet_loss` (its main branch, burst loss): each draw is
//! lost with probability `loss_rate`, or `min(1, loss_rate + correlation)` when the
//! previous draw was lost (a simplified Gilbert-Elliott model). Draws come from the
//! toxic's seeded stream.
//!
//! * `mode: "drop"` (the default, Toxiproxy's behaviour): one draw per chunk; a lost chunk
//!   is discarded, so the byte stream is corrupted.
//! * `mode: "retransmit"`: the stream stays byte-exact, as TCP keeps it. It is cut into
//!   segments of `mss` bytes (default 1460) at fixed stream offsets; one draw is made when
//!   a segment's first byte is due to leave. A lost segment holds itself and everything
//!   behind it for `rto` ms (default 200), then is drawn again; each further loss of the
//!   same segment doubles the wait, up to 60 s per wait. A segment that gets through goes
//!   out with everything queued behind it up to its end.
//!
//! End-of-stream passes in order. Up to [`BUFFER`] items are queued before the stage
//! pushes back. `update` keeps the queue and the current hold; new values apply from the
//! next draw.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

use super::{add_saturating, millis, Chunk, Item, Poll, Toxic, ToxicRng};
use crate::model::{AttrDef, AttrValue, Lit, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("packet_loss", "PacketLossToxic")
    .summary("lose data: drop chunks, or hold the stream as TCP retransmission does")
    .attrs(&[
        AttrDef::float("loss_rate")
            .between_f(0.0, 1.0)
            .unit("0-1")
            .help("probability that a chunk (drop) or segment (retransmit) is lost"),
        AttrDef::float("correlation")
            .between_f(0.0, 1.0)
            .unit("0-1")
            .help("added loss probability right after a loss (burst loss)"),
        AttrDef::one_of("mode", &["drop", "retransmit"])
            .when_set()
            .unit("name")
            .help("drop (default): lost chunks are discarded (the stream is corrupted); retransmit: the stream stays intact and each lost segment holds it for rto"),
        AttrDef::int("mss")
            .default(Lit::Int(DEFAULT_MSS))
            .when_set()
            .at_least(1)
            .unit("bytes")
            .help("retransmit: segment size (default 1460)"),
        AttrDef::int("rto")
            .default(Lit::Int(DEFAULT_RTO_MS))
            .when_set()
            .at_least(1)
            .unit("ms")
            .help("retransmit: wait after a loss, doubled for each further loss of the same segment, up to 60 s (default 200)"),
    ]);

pub fn build(kind: &ToxicKind, rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    Box::new(PacketLoss::new(Params::of(kind), rng))
}

pub const DEFAULT_MSS: i64 = 1460;
pub const DEFAULT_RTO_MS: i64 = 200;
/// The longest single retransmission wait.
pub const MAX_RTO: Duration = Duration::from_secs(60);
/// Items queued before the stage pushes back.
pub const BUFFER: usize = 1024;

/// The attributes, read once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub loss_rate: f64,
    pub correlation: f64,
    pub retransmit: bool,
    pub mss: usize,
    pub rto: Duration,
}

impl Params {
    pub fn of(kind: &ToxicKind) -> Params {
        let int_or = |name: &str, default: i64| {
            kind.get(name)
                .and_then(AttrValue::as_int)
                .unwrap_or(default)
                .max(1)
        };
        Params {
            loss_rate: kind.float("loss_rate").clamp(0.0, 1.0),
            correlation: kind.float("correlation").clamp(0.0, 1.0),
            retransmit: kind.str("mode") == Some("retransmit"),
            mss: usize::try_from(int_or("mss", DEFAULT_MSS)).unwrap_or(usize::MAX),
            rto: millis(int_or("rto", DEFAULT_RTO_MS)),
        }
    }
}

/// A packet_loss stage.
pub struct PacketLoss {
    p: Params,
    rng: ToxicRng,
    /// Whether the last draw was a loss.
    was_lost: bool,
    queue: VecDeque<Item>,
    /// Retransmit: bytes of the current segment already cleared to leave.
    cleared: usize,
    /// Retransmit: the current segment is lost until this instant, after `losses` losses.
    hold: Option<(Instant, u32)>,
}

impl PacketLoss {
    pub fn new(p: Params, rng: ToxicRng) -> PacketLoss {
        PacketLoss {
            p,
            rng,
            was_lost: false,
            queue: VecDeque::new(),
            cleared: 0,
            hold: None,
        }
    }

    /// One loss draw.
    fn lost(&mut self) -> bool {
        let p = if self.was_lost {
            (self.p.loss_rate + self.p.correlation).min(1.0)
        } else {
            self.p.loss_rate
        };
        // `unit_f64` is below 1, so p = 1 always loses and p = 0 never does.
        self.was_lost = self.rng.unit_f64() < p;
        self.was_lost
    }

    /// The wait after the `n`th consecutive loss of a segment (n >= 1).
    fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
        self.p.rto.saturating_mul(factor).min(MAX_RTO)
    }

    fn poll_retransmit(&mut self, now: Instant) -> Poll {
        loop {
            let Some(front) = self.queue.front_mut() else {
                return Poll::Idle;
            };
            let chunk = match front {
                Item::Eof => return Poll::Ready(self.queue.pop_front().expect("front")),
                Item::Data(c) if c.data.is_empty() => {
                    return Poll::Ready(self.queue.pop_front().expect("front"))
                }
                Item::Data(c) => c,
            };
            if self.cleared > 0 {
                let n = self.cleared.min(chunk.data.len());
                self.cleared -= n;
                if n == chunk.data.len() {
                    return Poll::Ready(self.queue.pop_front().expect("front"));
                }
                let data = chunk.data.split_to(n);
                return Poll::Ready(Item::Data(Chunk { data, ts: chunk.ts }));
            }
            // The next segment starts here: is it (still) lost?
            let losses = match self.hold {
                Some((until, _)) if now < until => return Poll::Wait(until),
                Some((_, n)) => n,
                None => 0,
            };
            if self.lost() {
                let until = add_saturating(now, self.backoff(losses + 1));
                self.hold = Some((until, losses + 1));
                return Poll::Wait(until);
            }
            self.hold = None;
            self.cleared = self.p.mss;
        }
    }
}

impl Toxic for PacketLoss {
    fn can_accept(&self) -> bool {
        self.queue.len() < BUFFER
    }

    fn push(&mut self, item: Item, _now: Instant) {
        if !self.p.retransmit && matches!(item, Item::Data(_)) && self.lost() {
            return;
        }
        self.queue.push_back(item);
    }

    fn poll(&mut self, now: Instant) -> Poll {
        if self.p.retransmit {
            self.poll_retransmit(now)
        } else {
            match self.queue.pop_front() {
                Some(item) => Poll::Ready(item),
                None => Poll::Idle,
            }
        }
    }

    fn update(&mut self, kind: &ToxicKind, _now: Instant) {
        if kind.is(&DEF) {
            self.p = Params::of(kind);
        }
    }

    fn drain(&mut self) -> VecDeque<Item> {
        self.cleared = 0;
        self.hold = None;
        std::mem::take(&mut self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::test_util::{at, bytes_of, data, input, Out, Sim};

    fn kind(loss: f64, corr: f64) -> ToxicKind {
        crate::toxics::kind("packet_loss")
            .with("loss_rate", loss)
            .with("correlation", corr)
    }

    fn retransmit(loss: f64, mss: i64, rto: i64) -> PacketLoss {
        let k = kind(loss, 0.0)
            .with("mode", "retransmit")
            .with("mss", mss)
            .with("rto", rto);
        assert!(k.validate().is_ok());
        PacketLoss::new(Params::of(&k), ToxicRng::new(21))
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 % 251) as u8).collect()
    }

    #[test]
    fn attributes_and_defaults() {
        let k = crate::toxics::kind("packet_loss");
        let shown: Vec<_> = k.attributes().map(|(a, _)| a.name).collect();
        assert_eq!(shown, ["loss_rate", "correlation"]);
        let p = Params::of(&k);
        assert!(!p.retransmit);
        assert_eq!((p.mss, p.rto), (1460, Duration::from_millis(200)));
        for (bad, msg) in [
            (kind(1.5, 0.0), "loss_rate must be between 0 and 1"),
            (kind(0.1, -0.1), "correlation must be between 0 and 1"),
            (kind(0.1, 0.0).with("mss", 0), "mss must be at least 1"),
            (kind(0.1, 0.0).with("rto", -5), "rto must be at least 1"),
        ] {
            assert_eq!(bad.validate().unwrap_err(), msg);
        }
        let bad = kind(0.1, 0.0).with("mode", "lose");
        assert!(bad.validate().unwrap_err().starts_with("mode must be one of"));
    }

    #[test]
    fn drop_mode_drops_about_loss_rate_of_the_chunks() {
        let t0 = Instant::now();
        let mut l = PacketLoss::new(Params::of(&kind(0.2, 0.0)), ToxicRng::new(4));
        let inputs = (0..10_000u32).map(|i| input(t0, &i.to_be_bytes())).collect();
        let out = Sim::new(at(t0, 1000)).run(&mut l, t0, inputs);
        let kept = out.len();
        assert!((7_700..8_300).contains(&kept), "{kept} of 10000 kept");
        // What is kept stays in order.
        let got: Vec<u32> = bytes_of(&out)
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn drop_mode_correlation_makes_bursts() {
        let runs = |corr: f64| {
            let mut l = PacketLoss::new(Params::of(&kind(0.1, corr)), ToxicRng::new(8));
            let draws: Vec<bool> = (0..10_000).map(|_| l.lost()).collect();
            let losses = draws.iter().filter(|&&x| x).count() as f64;
            let after_loss = draws.windows(2).filter(|w| w[0] && w[1]).count() as f64;
            after_loss / losses
        };
        assert!((runs(0.0) - 0.1).abs() < 0.03);
        assert!((runs(0.5) - 0.6).abs() < 0.05);
    }

    #[test]
    fn extremes_keep_or_lose_everything() {
        let t0 = Instant::now();
        let mut all = PacketLoss::new(Params::of(&kind(1.0, 0.0)), ToxicRng::new(1));
        let inputs = vec![input(t0, b"a"), input(t0, b"b"), (t0, Item::Eof)];
        let out = Sim::new(at(t0, 10)).run(&mut all, t0, inputs.clone());
        assert_eq!(out, vec![(t0, Out::Item(Item::Eof))]);
        let mut none = PacketLoss::new(Params::of(&kind(0.0, 1.0)), ToxicRng::new(1));
        let out = Sim::new(at(t0, 10)).run(&mut none, t0, inputs);
        assert_eq!(bytes_of(&out), b"ab");
    }

    #[test]
    fn retransmit_is_byte_exact_and_adds_rto_per_loss() {
        let t0 = Instant::now();
        let p = pattern(1_000_000);
        let mut l = retransmit(0.01, 1000, 50);
        let inputs = p.chunks(32 * 1024).map(|c| input(t0, c)).collect();
        let out = Sim::new(at(t0, 10_000_000)).run(&mut l, t0, inputs);
        assert_eq!(bytes_of(&out), p, "every byte, in order");
        // 1000 segments at 1 % loss: about 10 losses of 50 ms (a few doubled).
        let took = out.last().unwrap().0.duration_since(t0).as_millis();
        assert!((200..=1500).contains(&took), "took {took} ms");
        // No piece crosses a segment boundary it was not cleared for.
        let mut pos = 0usize;
        for (_, o) in &out {
            let n = o.data().unwrap().len();
            assert!(pos / 1000 == (pos + n - 1) / 1000, "piece at {pos} len {n}");
            pos += n;
        }
    }

    #[test]
    fn retransmit_doubles_for_consecutive_losses_up_to_60_s() {
        let t0 = Instant::now();
        let mut l = retransmit(1.0, 100, 200);
        l.push(data(&[1; 10], t0), t0);
        assert_eq!(l.poll(t0), Poll::Wait(at(t0, 200)));
        assert_eq!(l.poll(at(t0, 200)), Poll::Wait(at(t0, 600)));
        assert_eq!(l.poll(at(t0, 600)), Poll::Wait(at(t0, 1400)));
        let mut now = at(t0, 1400);
        let mut waits = Vec::new();
        for _ in 0..12 {
            match l.poll(now) {
                Poll::Wait(t) => {
                    waits.push(t.duration_since(now).as_millis());
                    now = t;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(&waits[..6], &[1600, 3200, 6400, 12_800, 25_600, 51_200]);
        assert!(waits[6..].iter().all(|&w| w == 60_000), "{waits:?}");
        // Lowering the loss lets the segment through at its next attempt, then the rest.
        // (`now` is the deadline of the last wait: the next attempt is due.)
        l.update(&kind(0.0, 0.0).with("mode", "retransmit"), now);
        l.push(Item::Eof, now);
        let later = now;
        assert_eq!(l.poll(later), Poll::Ready(data(&[1; 10], t0)));
        assert_eq!(l.poll(later), Poll::Ready(Item::Eof));
        assert_eq!(l.poll(later), Poll::Idle);
    }

    #[test]
    fn a_lost_segment_holds_everything_behind_it() {
        let t0 = Instant::now();
        let mut l = retransmit(1.0, 4, 100);
        l.push(data(b"abcdefgh", t0), t0);
        l.push(data(b"ij", t0), t0);
        assert_eq!(l.poll(t0), Poll::Wait(at(t0, 100)));
        assert!(l.can_accept());
        let d = l.drain();
        assert_eq!(d, VecDeque::from([data(b"abcdefgh", t0), data(b"ij", t0)]));
        assert_eq!(l.poll(at(t0, 1000)), Poll::Idle);
    }

    #[test]
    fn retransmit_clears_whole_segments_across_chunks() {
        let t0 = Instant::now();
        let mut l = retransmit(0.0, 4, 100);
        l.push(data(b"abcdef", t0), t0);
        l.push(data(b"gh", t0), t0);
        let mut got = Vec::new();
        while let Poll::Ready(Item::Data(c)) = l.poll(t0) {
            got.push(c.data.to_vec());
        }
        assert_eq!(got, [b"abcd".to_vec(), b"ef".to_vec(), b"gh".to_vec()]);
    }
}
