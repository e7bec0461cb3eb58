//! The Markdown a benchmark writes: one section of BENCHMARKS.md per file in
//! `target/bench/sections/`, concatenated in name order by bench/run.sh.

use std::fmt::Write as _;
use std::path::Path;

/// A Markdown table.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table { header: header.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    pub fn to_markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.header);
        out += &line(&vec!["---".to_string(); self.header.len()]);
        for row in &self.rows {
            out += &line(row);
        }
        out
    }
}

/// A duration in seconds, in the unit that keeps three significant figures
/// readable: ns, µs, ms or s.
pub fn seconds(value: f64) -> String {
    let (scaled, unit) = match value.abs() {
        v if v < 1e-6 => (value * 1e9, "ns"),
        v if v < 1e-3 => (value * 1e6, "µs"),
        v if v < 1.0 => (value * 1e3, "ms"),
        _ => (value, "s"),
    };
    format!("{} {unit}", three_figures(scaled))
}

/// `ours` compared with `peer` as "N× faster" (or slower), from the same run.
pub fn ratio(peer: f64, ours: f64) -> String {
    if ours <= 0.0 || peer <= 0.0 {
        return "n/a".to_string();
    }
    if peer >= ours {
        format!("{}× faster", three_figures(peer / ours))
    } else {
        format!("{}× slower", three_figures(ours / peer))
    }
}

/// Bytes as KiB or MiB with three significant figures.
pub fn bytes(value: u64) -> String {
    let v = value as f64;
    if v >= 1024.0 * 1024.0 {
        format!("{} MiB", three_figures(v / (1024.0 * 1024.0)))
    } else if v >= 1024.0 {
        format!("{} KiB", three_figures(v / 1024.0))
    } else {
        format!("{value} B")
    }
}

pub fn three_figures(value: f64) -> String {
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        3
    };
    let mut out = String::new();
    let _ = write!(out, "{value:.decimals$}");
    out
}

/// Writes a section file, creating its directory.
pub fn write_section(path: &Path, markdown: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, markdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_header_rule_and_rows() {
        let mut t = Table::new(["a", "b"]);
        t.row(["1", "2"]);
        assert_eq!(t.to_markdown(), "| a | b |\n| --- | --- |\n| 1 | 2 |\n");
    }

    #[test]
    fn units_and_ratios() {
        assert_eq!(seconds(0.000_001_5), "1.50 µs");
        assert_eq!(seconds(0.0123), "12.3 ms");
        assert_eq!(seconds(2.0), "2.00 s");
        assert_eq!(seconds(4.2e-8), "42.0 ns");
        assert_eq!(ratio(30.0, 1.0), "30.0× faster");
        assert_eq!(ratio(1.0, 2.0), "2.00× slower");
        assert_eq!(ratio(1.0, 0.0), "n/a");
        assert_eq!(bytes(3 * 1024 * 1024 + 512 * 1024), "3.50 MiB");
        assert_eq!(bytes(2048), "2.00 KiB");
    }
}
