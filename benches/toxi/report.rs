//! The result table and the machine description.

pub enum Target {
    None,
    RatioAtLeast(f64),
}

pub struct Row {
    pub figure: String,
    pub direct: String,
    pub toxi: String,
    pub ratio: String,
    pub target: String,
    /// `None` when the row has no target.
    pub ok: Option<bool>,
}

impl Row {
    pub fn ratio(figure: &str, direct: String, toxi: String, ratio: f64, target: Target) -> Row {
        let (target, ok) = match target {
            Target::None => ("-".to_string(), None),
            Target::RatioAtLeast(r) => (format!("≥ {r}× direct"), Some(ratio >= r)),
        };
        Row {
            figure: figure.into(),
            direct,
            toxi,
            ratio: format!("{ratio:.2}×"),
            target,
            ok,
        }
    }

    pub fn added(
        figure: &str,
        direct: String,
        toxi: String,
        ratio: f64,
        added: f64,
        limit: Option<f64>,
        target: &str,
    ) -> Row {
        Row {
            figure: figure.into(),
            direct,
            toxi,
            ratio: format!("{ratio:.2}×"),
            target: target.into(),
            ok: limit.map(|l| added < l),
        }
    }

    pub fn value(
        figure: &str,
        direct: String,
        toxi: String,
        ratio: String,
        ok: bool,
        target: &str,
    ) -> Row {
        let has_target = target != "-";
        Row {
            figure: figure.into(),
            direct,
            toxi,
            ratio,
            target: target.into(),
            ok: has_target.then_some(ok),
        }
    }

    pub fn info(figure: &str, direct: String, toxi: String) -> Row {
        Row {
            figure: figure.into(),
            direct,
            toxi,
            ratio: "-".into(),
            target: "-".into(),
            ok: None,
        }
    }

    /// Keeps the target column's text but drops the pass/fail verdict (for information
    /// rows such as a reference proxy).
    pub fn without_target(mut self) -> Row {
        self.ok = None;
        self
    }

    pub fn error(figure: &str, msg: String) -> Row {
        Row {
            figure: figure.into(),
            direct: "-".into(),
            toxi: format!("ERROR: {msg}"),
            ratio: "-".into(),
            target: "-".into(),
            ok: Some(false),
        }
    }
}

const HEADER: [&str; 6] = ["figure", "direct", "toxi", "ratio", "target", "ok?"];

fn cells(rows: &[Row]) -> Vec<[String; 6]> {
    rows.iter()
        .map(|r| {
            [
                r.figure.clone(),
                r.direct.clone(),
                r.toxi.clone(),
                r.ratio.clone(),
                r.target.clone(),
                match r.ok {
                    None => "-".into(),
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                },
            ]
        })
        .collect()
}

/// Renders rows as compact Markdown, as the README's results table has it: no padding,
/// a figure's leading spaces as `&nbsp;` (Markdown would drop them), `|` escaped.
pub fn markdown(rows: &[Row]) -> String {
    let line = |c: &[String]| {
        let parts: Vec<String> = c
            .iter()
            .map(|s| {
                let body = s.trim_start_matches(' ');
                let indent = "&nbsp;".repeat(s.len() - body.len());
                format!("{indent}{}", body.replace('|', "\\|"))
            })
            .collect();
        format!("| {} |\n", parts.join(" | "))
    };
    let mut out = line(&HEADER.map(String::from));
    out.push_str("|---|---|---|---|---|---|\n");
    for c in &cells(rows) {
        out.push_str(&line(c));
    }
    out
}

/// Renders rows as a plain-text table that is also valid Markdown.
pub fn table(rows: &[Row]) -> String {
    let header = HEADER;
    let cells = cells(rows);
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..6).map(width).collect();
    let line = |c: &[String]| {
        let parts: Vec<String> = c
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s}{}", " ".repeat(w - s.chars().count())))
            .collect();
        format!("| {} |\n", parts.join(" | "))
    };
    let mut out = line(&header.map(String::from));
    let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("|-{}-|\n", dashes.join("-|-")));
    for c in &cells {
        out.push_str(&line(c));
    }
    out
}

/// nproc, CPU model and kernel, from /proc.
pub fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown kernel".into());
    format!("{nproc} CPUs ({cpu}), Linux {kernel}")
}
