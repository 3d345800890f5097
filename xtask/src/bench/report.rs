//! The end of every bench: its table as aligned text and as markdown, the notes, and the
//! markdown file, written only when nothing failed; and the UTC time stamps they carry.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The end of every bench: prints the table and the notes, writes the markdown to `md_path`
/// unless something failed (the last complete table stays there then), and turns the failures
/// into the bench's result.
pub(super) fn report(
    text: &str,
    notes: &[String],
    md_path: &Path,
    markdown: impl FnOnce() -> String,
    mut failures: Vec<String>,
) -> Result<(), String> {
    println!();
    print!("{text}");
    for n in notes {
        println!("{n}");
    }
    if !failures.is_empty() {
        println!("bench: {} left as it was, since something failed", md_path.display());
    } else if let Err(e) = fs::write(md_path, markdown()) {
        failures.push(format!("writing {}: {e}", md_path.display()));
    } else {
        println!("bench: table written to {}", md_path.display());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// One table row: the first cell left-aligned, the rest right-aligned, each padded to its
/// column's width, between `open` and `close` and separated by `sep`.
fn row(cells: &[String; 4], widths: &[usize; 4], open: &str, sep: &str, close: &str) -> String {
    let mut out = String::from(open);
    for (i, (cell, &width)) in cells.iter().zip(widths).enumerate() {
        if i == 0 {
            let _ = write!(out, "{cell:<width$}");
        } else {
            let _ = write!(out, "{sep}{cell:>width$}");
        }
    }
    out.push_str(close);
    out
}

/// A four-column results table, as aligned text and as markdown (shared by every bench).
pub(super) struct Grid {
    pub(super) header: [String; 4],
    pub(super) rows: Vec<[String; 4]>,
}

impl Grid {
    fn widths(&self) -> [usize; 4] {
        let mut w = self.header.each_ref().map(|h| h.len());
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.len());
            }
        }
        w
    }

    /// Aligned text with a rule under the header and `footnote` last.
    pub(super) fn text(&self, footnote: &str) -> String {
        let w = self.widths();
        let line = |cells: &[String; 4]| row(cells, &w, "", "  ", "\n");
        let mut out = line(&self.header);
        out.push_str(&"-".repeat(w.iter().sum::<usize>() + 6));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out.push_str(footnote);
        out.push('\n');
        out
    }

    /// A markdown table, first column left-aligned, numbers right-aligned.
    pub(super) fn markdown(&self) -> String {
        let w = self.widths();
        let line = |cells: &[String; 4]| row(cells, &w, "| ", " | ", " |\n");
        let mut md = line(&self.header);
        md.push_str(&format!(
            "|:{}|{}:|{}:|{}:|\n",
            "-".repeat(w[0] + 1),
            "-".repeat(w[1] + 1),
            "-".repeat(w[2] + 1),
            "-".repeat(w[3] + 1)
        ));
        for r in &self.rows {
            md.push_str(&line(r));
        }
        md
    }
}

pub(super) fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM` of a Unix time, in UTC.
pub(super) fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let (h, m) = ((unix % 86_400) / 3600, (unix % 3600) / 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13");
    }
}
