//! `--show`: a table like `dpdk-hugepages.py --show`, or JSON.

use std::fmt::Write;

use burst_mem::hugepage::{format_size, HugepageInfo, PageCounts};

/// One row per node and page size, then the mounts:
///
/// ```text
/// Node  Pages  Size  Free  Total
/// 0     4      2M    4     8M
/// 0     0      1G    0     0
///
/// Hugepages mounted on /dev/hugepages (2M pages)
/// ```
pub fn table(info: &HugepageInfo) -> String {
    let mut rows = vec![["Node", "Pages", "Size", "Free", "Total"].map(String::from)];
    for c in &info.nodes {
        rows.push([
            c.node.map_or("-".to_owned(), |n| n.to_string()),
            c.total.to_string(),
            c.size.to_string(),
            c.free.to_string(),
            format_size(c.total.saturating_mul(c.size.bytes())),
        ]);
    }
    let mut widths = [0; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out.push('\n');
    if info.mounts.is_empty() {
        out.push_str("Hugepages not mounted (run `hugepages --mount`)\n");
    }
    for m in &info.mounts {
        let _ = writeln!(out, "Hugepages mounted on {} ({} pages)", m.path.display(), m.page_size);
    }
    out
}

/// The same as JSON: `{"default_size", "sizes", "system", "nodes", "mounts"}`. Sizes appear both
/// as text (`"2M"`) and in bytes; per-node counts have no `reserved` (the kernel keeps none).
pub fn json(info: &HugepageInfo) -> String {
    let sizes: Vec<String> = info.sizes.iter().map(|s| string(&s.to_string())).collect();
    let system: Vec<String> = info.system.iter().map(|c| counts(c, true)).collect();
    let nodes: Vec<String> = info.nodes.iter().map(|c| counts(c, false)).collect();
    let mounts: Vec<String> = info
        .mounts
        .iter()
        .map(|m| {
            format!(
                "{{\"path\":{},\"size\":{},\"size_bytes\":{}}}",
                string(&m.path.to_string_lossy()),
                string(&m.page_size.to_string()),
                m.page_size.bytes()
            )
        })
        .collect();
    format!(
        "{{\"default_size\":{},\"sizes\":[{}],\"system\":[{}],\"nodes\":[{}],\"mounts\":[{}]}}\n",
        string(&info.default_size.to_string()),
        sizes.join(","),
        system.join(","),
        nodes.join(","),
        mounts.join(",")
    )
}

fn counts(c: &PageCounts, system: bool) -> String {
    let mut out = String::from("{");
    if let Some(node) = c.node {
        let _ = write!(out, "\"node\":{node},");
    }
    let _ = write!(
        out,
        "\"size\":{},\"size_bytes\":{},\"total\":{},\"free\":{},",
        string(&c.size.to_string()),
        c.size.bytes(),
        c.total,
        c.free
    );
    if system {
        let _ = write!(out, "\"reserved\":{},", c.reserved);
    }
    let _ = write!(out, "\"surplus\":{}}}", c.surplus);
    out
}

/// A JSON string literal (RFC 8259 section 7).
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::string;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(string("/dev/huge pages"), "\"/dev/huge pages\"");
        assert_eq!(string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\u000ad\\u0001\"");
    }
}
