//! Structured logs on stdout, as the reference writes them.
//!
//! * **Format.** JSON lines by default, one object per event, keys in zerolog's order:
//!   `level`, then the fields of the enclosing spans (outermost first), then the event's
//!   fields, then `caller` (`file.rs:line`), `time` (RFC 3339, UTC, whole seconds, `Z`)
//!   and `message` last (left out when the event has none). Level names are `trace`,
//!   `debug`, `info`, `warn` and `error`.
//!
//!   ```text
//!   {"level":"info","name":"echo","listen":"127.0.0.1:26501","upstream":"127.0.0.1:26500","caller":"mod.rs:108","time":"2026-11-24T14:34:27Z","message":"Started proxy"}
//!   ```
//!
//!   `LOG_FORMAT=text` switches to a human-readable line format instead (toxi's own
//!   variable; the reference has no such option). Any other value keeps JSON and logs a
//!   warning.
//! * **Level.** `LOG_LEVEL` takes the reference's names, case-insensitively: `trace`,
//!   `debug`, `info`, `warn`, `error`, `fatal`, `panic`, `disabled`, or an integer from
//!   -128 to 127 (zerolog's numbering: -1 trace … 3 error, 4 and 5 fatal/panic, 6 and up
//!   nothing). Unset means everything, trace included; set but empty means `info`.
//!   `warning` is rejected like any unknown value: the server logs an error and keeps
//!   logging everything. toxi has no fatal or panic events, so `fatal` and `panic` keep
//!   error lines.
//!
//! Only toxi's own events are logged at trace and debug; other crates' events are capped
//! at `warn`.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The log line format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// zerolog-style JSON lines (the default).
    Json,
    /// Human-readable lines.
    Text,
}

/// Parses a `LOG_LEVEL` value as the reference does. `None` (unset) means everything.
/// `Err` carries the rejected value.
pub fn parse_level(raw: Option<&str>) -> Result<LevelFilter, String> {
    let Some(raw) = raw else {
        return Ok(LevelFilter::TRACE);
    };
    Ok(match raw.to_ascii_lowercase().as_str() {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" | "" => LevelFilter::INFO,
        "warn" => LevelFilter::WARN,
        "error" | "fatal" | "panic" => LevelFilter::ERROR,
        "disabled" => LevelFilter::OFF,
        other => match other.parse::<i8>() {
            Ok(n) if n <= -1 => LevelFilter::TRACE,
            Ok(0) => LevelFilter::DEBUG,
            Ok(1) => LevelFilter::INFO,
            Ok(2) => LevelFilter::WARN,
            Ok(3..=5) => LevelFilter::ERROR,
            Ok(_) => LevelFilter::OFF,
            Err(_) => return Err(raw.to_string()),
        },
    })
}

/// Parses a `LOG_FORMAT` value (`json` or `text`, case-insensitive). `None` means JSON.
pub fn parse_format(raw: Option<&str>) -> Result<Format, String> {
    match raw.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("json") => Ok(Format::Json),
        Some("text") => Ok(Format::Text),
        Some(_) => Err(raw.unwrap_or_default().to_string()),
    }
}

/// The filter for `level`: toxi's own targets at `level`, other crates at most `warn`.
pub fn filter(level: LevelFilter) -> Targets {
    Targets::new()
        .with_default(level.min(LevelFilter::WARN))
        .with_target("toxi", level)
        .with_target("toxi_server", level)
}

/// Keeps the log writer thread alive; dropping it flushes the lines still queued.
#[must_use = "logs written after the guard is dropped may be lost"]
pub struct LogGuard {
    _worker: Option<batch::Guard>,
}

/// Installs the global subscriber from `LOG_LEVEL` and `LOG_FORMAT`, writing to stdout.
/// Does nothing if a subscriber is already installed. Invalid values are logged once the
/// logger is up.
///
/// Lines go to stdout through a writer thread and a bounded buffer ([`batch`]), so a
/// stalled stdout (a full pipe nobody reads) never blocks a proxy or the API: while the
/// buffer is full, new lines are dropped. Keep the returned guard until exit; dropping it
/// flushes.
pub fn init() -> LogGuard {
    let env = |name| std::env::var(name).ok();
    let level = parse_level(env("LOG_LEVEL").as_deref());
    let format = parse_format(env("LOG_FORMAT").as_deref());
    let max = level.as_ref().copied().unwrap_or(LevelFilter::TRACE);
    let registry = tracing_subscriber::registry().with(filter(max));
    let (stdout, guard) = batch::stdout();
    let installed = match format.clone().unwrap_or(Format::Json) {
        Format::Json => registry.with(json_layer(stdout)).try_init(),
        Format::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_writer(stdout),
            )
            .try_init(),
    };
    if installed.is_err() {
        return LogGuard { _worker: None };
    }
    // Other crates log through `log` at most at `warn` (see `filter`). Installing the
    // subscriber let `log` build every record up to its own level, trace included: mio
    // then formatted a line per socket registered or dropped, only for `filter` to drop
    // it. Capped here, such a record costs one comparison.
    log::set_max_level(match max.min(LevelFilter::WARN) {
        LevelFilter::WARN => log::LevelFilter::Warn,
        LevelFilter::ERROR => log::LevelFilter::Error,
        _ => log::LevelFilter::Off,
    });
    if let Err(raw) = level {
        tracing::error!(
            error = format!("Unknown Level String: '{raw}', defaulting to NoLevel"),
            "unknown LOG_LEVEL value: {raw:?}"
        );
    }
    if let Err(raw) = format {
        tracing::warn!("unknown LOG_FORMAT value: {raw:?} (expected \"json\" or \"text\")");
    }
    LogGuard {
        _worker: Some(guard),
    }
}

/// A `fmt` layer writing zerolog-style JSON lines to `make_writer`.
pub fn json_layer<S, W>(
    make_writer: W,
) -> tracing_subscriber::fmt::Layer<S, JsonFields, JsonFormat, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields)
        .event_format(JsonFormat::default())
        .with_writer(make_writer)
}

/// The JSON event format. `clock` gives the time of each line (the system clock unless a
/// test fixes it).
#[derive(Debug, Clone, Copy)]
pub struct JsonFormat {
    clock: fn() -> SystemTime,
}

impl Default for JsonFormat {
    fn default() -> Self {
        JsonFormat {
            clock: SystemTime::now,
        }
    }
}

impl JsonFormat {
    /// The same format with another clock (for tests).
    pub fn with_clock(clock: fn() -> SystemTime) -> JsonFormat {
        JsonFormat { clock }
    }
}

/// zerolog's level names.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = String::with_capacity(256);
        line.push_str("{\"level\":\"");
        line.push_str(level_name(meta.level()));
        line.push('"');
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<JsonFields>>() {
                    if !fields.fields.is_empty() {
                        line.push(',');
                        line.push_str(&fields.fields);
                    }
                }
            }
        }
        let mut visitor = JsonVisitor::new(&mut line, true);
        event.record(&mut visitor);
        let message = visitor.message.take();
        if let (Some(file), Some(no)) = (meta.file(), meta.line()) {
            let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
            line.push_str(",\"caller\":");
            let at = line.len();
            let _ = write!(line, "{base}:{no}");
            escape_tail(&mut line, at);
        }
        line.push_str(",\"time\":\"");
        push_rfc3339_seconds(&mut line, (self.clock)());
        line.push('"');
        if let Some(message) = message {
            line.push_str(",\"message\":");
            crate::model::json::write_str_plain(&mut line, &message);
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

/// Span fields as JSON members (`"k":v,"k2":v2`), so that events can splice them in.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut out = String::new();
        fields.record(&mut JsonVisitor::new(&mut out, false));
        // Members are written with a leading comma; a span's list starts without one.
        writer.write_str(out.strip_prefix(',').unwrap_or(&out))
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut out = String::new();
        fields.record(&mut JsonVisitor::new(&mut out, false));
        if current.fields.is_empty() {
            current
                .fields
                .push_str(out.strip_prefix(',').unwrap_or(&out));
        } else {
            current.fields.push_str(&out);
        }
        Ok(())
    }
}

/// Appends each field as `,"name":value`. The `message` field is kept aside when
/// `take_message` is set (events), so it can go last.
struct JsonVisitor<'a> {
    out: &'a mut String,
    take_message: bool,
    message: Option<String>,
}

impl<'a> JsonVisitor<'a> {
    fn new(out: &'a mut String, take_message: bool) -> JsonVisitor<'a> {
        JsonVisitor {
            out,
            take_message,
            message: None,
        }
    }

    fn key(&mut self, field: &Field) {
        let name = field.name();
        self.out.push(',');
        crate::model::json::write_str_plain(self.out, name.strip_prefix("r#").unwrap_or(name));
        self.out.push(':');
    }

    fn raw(&mut self, field: &Field, value: impl fmt::Display) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn string(&mut self, field: &Field, value: &str) {
        if self.take_message && field.name() == "message" {
            self.message = Some(value.to_string());
            return;
        }
        self.key(field);
        crate::model::json::write_str_plain(self.out, value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, value);
        } else {
            self.string(field, &value.to_string());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.raw(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.raw(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.string(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.take_message && field.name() == "message" {
            self.message = Some(format!("{value:?}"));
            return;
        }
        // Formatted straight into the line (no string per field), then quoted.
        self.key(field);
        let at = self.out.len();
        let _ = write!(self.out, "{value:?}");
        escape_tail(self.out, at);
    }
}

/// Turns what was written to `line` from `at` on into a JSON string literal.
fn escape_tail(line: &mut String, at: usize) {
    if line[at..].bytes().all(crate::model::json::is_plain_byte) {
        line.insert(at, '"');
        line.push('"');
    } else {
        let raw = line.split_off(at);
        crate::model::json::write_str_plain(line, &raw);
    }
}

/// [`rfc3339_seconds`] appended to `line`, rendered once per second per thread.
fn push_rfc3339_seconds(line: &mut String, t: SystemTime) {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, rfc3339_seconds(t));
        }
        line.push_str(&last.1);
    });
}

/// Formats `t` as RFC 3339 in UTC with whole seconds: `2026-11-24T14:34:27Z`. Times
/// before 1970 print as the epoch.
pub fn rfc3339_seconds(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (days are grouped into
/// 400-year eras of 146,097 days, with years starting on 1 March so leap days come last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn civil_dates() {
        let at = |s| rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(1_795_531_026_999)),
            "2026-11-24T14:37:06Z"
        );
    }

    #[test]
    fn json_strings() {
        let mut s = String::new();
        crate::model::json::write_str_plain(&mut s, "a\"b\\c\nd\u{1}é<>&");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é<>&""#);
    }
}

/// The stdout writer: lines are appended to a bounded shared buffer, and one writer thread
/// moves the buffer to stdout in batches. The thread is woken only when a line lands in an
/// empty buffer, and then gathers for [`batch::GATHER`] before it writes, so a server
/// logging a line per connection costs one wake-up per batch instead of one per line
/// (the logging thread never spins or wakes per line). A full buffer (stdout stalled)
/// drops new lines and counts them; the count is logged once stdout moves again.
mod batch {
    use std::io::{self, Write};
    use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    use std::time::Duration;

    /// How long the writer gathers lines after the first of a batch.
    pub(super) const GATHER: Duration = Duration::from_millis(2);
    /// The most bytes held for a stalled stdout before lines are dropped.
    const CAP: usize = 8 << 20;

    #[derive(Default)]
    struct State {
        buf: Vec<u8>,
        dropped: u64,
        closed: bool,
        /// The writer thread waits for a first line: the next line wakes it. While it
        /// gathers or writes, lines are only added (no wake-up, no syscall).
        waiting: bool,
    }

    #[derive(Default)]
    struct Shared {
        state: Mutex<State>,
        ready: Condvar,
    }

    impl Shared {
        fn lock(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// What the formatting layer writes to (one `write` per line).
    #[derive(Clone)]
    pub(super) struct Writer(Arc<Shared>);

    impl Write for Writer {
        fn write(&mut self, line: &[u8]) -> io::Result<usize> {
            let mut st = self.0.lock();
            if st.buf.len() + line.len() > CAP {
                st.dropped += 1;
                return Ok(line.len());
            }
            let wake = std::mem::take(&mut st.waiting);
            st.buf.extend_from_slice(line);
            drop(st);
            if wake {
                self.0.ready.notify_one();
            }
            Ok(line.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Writer {
        type Writer = Writer;
        fn make_writer(&'a self) -> Writer {
            self.clone()
        }
    }

    /// Stops the writer thread after it wrote what is buffered, waiting at most a second
    /// (a stalled stdout must not hold up exit).
    pub(super) struct Guard {
        shared: Arc<Shared>,
        done: Option<std::sync::mpsc::Receiver<()>>,
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            self.shared.lock().closed = true;
            self.shared.ready.notify_one();
            if let Some(done) = self.done.take() {
                let _ = done.recv_timeout(Duration::from_secs(1));
            }
        }
    }

    /// A writer to stdout and the guard of its thread.
    pub(super) fn stdout() -> (Writer, Guard) {
        to(io::stdout())
    }

    pub(super) fn to(mut out: impl Write + Send + 'static) -> (Writer, Guard) {
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let (finished, done) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("toxi-log".into())
            .spawn(move || {
                let _finished = finished;
                let mut spare = Vec::new();
                loop {
                    let mut st = theirs.lock();
                    while st.buf.is_empty() && !st.closed {
                        st.waiting = true;
                        st = theirs.ready.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    st.waiting = false;
                    if !st.closed {
                        drop(st);
                        std::thread::sleep(GATHER);
                        st = theirs.lock();
                    }
                    std::mem::swap(&mut st.buf, &mut spare);
                    let dropped = std::mem::take(&mut st.dropped);
                    let closed = st.closed && spare.is_empty();
                    drop(st);
                    let _ = out.write_all(&spare);
                    if dropped > 0 {
                        let _ = writeln!(
                            out,
                            "{{\"level\":\"warn\",\"message\":\"{dropped} log lines dropped: stdout was not keeping up\"}}"
                        );
                    }
                    let _ = out.flush();
                    spare.clear();
                    if closed {
                        return;
                    }
                }
            });
        // Without a thread, lines accumulate up to the cap and are then dropped.
        let done = thread.ok().map(|_| done);
        (Writer(shared.clone()), Guard { shared, done })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A sink that shares what it got.
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        #[test]
        fn every_line_arrives_in_order_and_drop_flushes() {
            let sink = Sink::default();
            let (mut w, guard) = to(sink.clone());
            let mut want = Vec::new();
            for i in 0..10_000 {
                let line = format!("line {i}\n");
                w.write_all(line.as_bytes()).unwrap();
                want.extend_from_slice(line.as_bytes());
            }
            drop(guard);
            assert!(*sink.0.lock().unwrap() == want);
        }

        /// A stdout that never takes a byte: writers never block, and lines past the cap are
        /// dropped.
        #[test]
        fn a_stalled_stdout_never_blocks_a_writer() {
            /// Tells when its first write starts, then blocks until released.
            struct Stalled(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);
            impl Write for Stalled {
                fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                    let _ = self.0.send(());
                    let _ = self.1.recv();
                    Ok(b.len())
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            let (release, stall) = std::sync::mpsc::channel();
            let (stalled_tx, stalled) = std::sync::mpsc::channel();
            let (mut w, guard) = to(Stalled(stalled_tx, stall));
            w.write_all(b"first\n").unwrap();
            stalled.recv().unwrap();
            // The writer thread is stuck in a write: the buffer fills, then lines drop.
            let line = [b'x'; 1024];
            let t0 = std::time::Instant::now();
            for _ in 0..(2 * CAP / line.len()) {
                w.write_all(&line).unwrap();
            }
            assert!(t0.elapsed() < Duration::from_secs(10));
            assert!(w.0.lock().dropped > 0);
            drop(release);
            drop(guard);
        }
    }
}
