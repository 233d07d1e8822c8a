//! Plain-text tables, CSV and JSON for people, spreadsheets and terminals.
//!
//! Every cell may be attacker-chosen (a user id, a model name, a request id come from client
//! requests), so every output surface goes through [`display`], [`csv_field`] or [`json`]:
//! control characters (C0, DEL, C1, ESC) and bidirectional overrides are shown as escapes
//! (`\u{1b}`) instead of reaching the terminal, where they could rewrite the screen, and CSV
//! cells that a spreadsheet would run as a formula get a leading apostrophe (OWASP "CSV
//! Injection").

use std::borrow::Cow;

/// Longest table cell shown, in characters: one hostile record must not widen every row of a
/// table (CSV and JSON keep whole values).
pub const MAX_TABLE_CELL_CHARS: usize = 200;

/// Characters never written as they are: C0 and C1 controls, DEL, and the invisible
/// bidirectional controls that reorder what a terminal or a spreadsheet shows.
fn hostile(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with hostile characters written as Rust escapes (`\n`, `\u{1b}`), safe for a terminal.
pub fn display(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hostile(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Compact JSON for a terminal: JSON escapes C0 controls itself; DEL, C1 and bidirectional
/// controls (which it may leave raw, and which can occur only inside strings) become `\uXXXX`
/// escapes, so the document means exactly the same.
pub fn json(value: &impl std::fmt::Display) -> String {
    let text = value.to_string();
    if !text.chars().any(hostile) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hostile(c) && u32::from(c) >= 0x20 {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A table cell: [`display`], cut to [`MAX_TABLE_CELL_CHARS`] with `…`.
fn table_cell(s: &str) -> String {
    let shown = display(s);
    if shown.chars().count() <= MAX_TABLE_CELL_CHARS {
        return shown.into_owned();
    }
    let mut cut: String = shown.chars().take(MAX_TABLE_CELL_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// First characters that make Excel, LibreOffice or Google Sheets read a cell as a formula
/// (OWASP: = + - @ TAB CR; ASVS adds NUL), and the fullwidth forms some of them normalise.
/// TAB, CR and NUL never start a cell here: [`display`] has escaped them already.
fn formula_start(c: char) -> bool {
    matches!(
        c,
        '=' | '+' | '-' | '@' | '\u{ff1d}' | '\u{ff0b}' | '\u{ff0d}' | '\u{ff20}'
    )
}

/// One CSV field: escaped like [`display`] (so every row stays one line), an apostrophe before
/// a formula start (also after leading spaces, which importers may trim), and quoted (RFC 4180:
/// quotes doubled) when it holds `,` `"` `;` (the separator of many locales) or edge spaces. A
/// lone `-` (our "none") is no formula and stays as it is.
pub fn csv_field(f: &str) -> String {
    let mut cell = display(f).into_owned();
    if cell != "-" && cell.trim_start().chars().next().is_some_and(formula_start) {
        cell.insert(0, '\'');
    }
    let edge_space = cell.starts_with(char::is_whitespace) || cell.ends_with(char::is_whitespace);
    if edge_space || cell.contains([',', '"', ';']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

/// Renders rows under a header, columns padded to their widest cell (by chars).
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| table_cell(h)).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| table_cell(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut first = true;
        for (cell, w) in cells.zip(&widths) {
            if !first {
                out.push_str("  ");
            }
            first = false;
            out.push_str(cell);
            for _ in cell.chars().count()..*w {
                out.push(' ');
            }
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&mut header.iter().map(String::as_str), &mut out);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut rule.iter().map(String::as_str), &mut out);
    for row in &rows {
        line(&mut row.iter().map(String::as_str), &mut out);
    }
    out
}

/// Renders rows as CSV ([`csv_field`] for every field), header first, `\r\n` line ends as
/// spreadsheets and finance imports expect.
pub fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|h| csv_field(h)).collect();
    out.push_str(&head.join(","));
    out.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns() {
        let t = render(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\n---  --\nxxx  y\n");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let out = csv(
            &["a", "b"],
            &[
                vec!["x,y".into(), "say \"hi\"".into()],
                vec!["1".into(), "".into()],
            ],
        );
        assert_eq!(out, "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n1,\r\n");
    }

    /// The cells of one CSV line (RFC 4180), for tests.
    fn cells(line: &str) -> Vec<String> {
        let mut out = vec![String::new()];
        let (mut quoted, mut chars) = (false, line.chars().peekable());
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    out.last_mut().unwrap().push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => out.push(String::new()),
                (c, _) => out.last_mut().unwrap().push(c),
            }
        }
        out
    }

    const HOSTILE: [&str; 14] = [
        "=cmd|' /C calc'!A0",
        "+1+2",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
        "\u{0}=1",
        "  =HYPERLINK(\"http://x\")",
        "\u{ff1d}1+1",
        "gpt-4o\u{1b}]0;pwned\u{7}\u{1b}[2J",
        "a\nb\r\nc",
        "csi\u{9b}31m",
        "user\u{202e}fdp.exe",
        "semi;colon",
    ];

    fn assert_inert(text: &str, line_end: &str) {
        for line in text.split_terminator(line_end) {
            assert!(
                !line.chars().any(hostile),
                "{line:?} has a control or bidi character"
            );
        }
    }

    #[test]
    fn csv_cells_are_never_formulas_and_rows_stay_lines() {
        let rows: Vec<Vec<String>> = HOSTILE
            .iter()
            .map(|h| vec![h.to_string(), "-".into(), "7".into()])
            .collect();
        let out = csv(&["user", "project", "requests"], &rows);
        assert_inert(&out, "\r\n");
        let lines: Vec<&str> = out.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 1 + HOSTILE.len(), "{out}");
        for (line, hostile) in lines.iter().skip(1).zip(HOSTILE) {
            let cells = cells(line);
            assert_eq!(cells.len(), 3, "{line}");
            let first = cells[0].trim_start().chars().next().unwrap();
            assert!(!formula_start(first), "{hostile:?} became {line:?}");
            assert_eq!(&cells[1..], ["-", "7"]);
        }
        assert_eq!(lines[1], "'=cmd|' /C calc'!A0,-,7");
        assert_eq!(lines[10], "\"gpt-4o\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\",-,7");
        assert_eq!(lines[14], "\"semi;colon\",-,7");
        // What is harmless stays as it was.
        assert_eq!(csv_field("proj-support"), "proj-support");
        assert_eq!(csv_field("gpt-4o"), "gpt-4o");
        assert_eq!(csv_field("a@b.co"), "a@b.co");
    }

    #[test]
    fn tables_show_control_characters_as_escapes_and_cap_cells() {
        let mut rows: Vec<Vec<String>> = HOSTILE.iter().map(|h| vec![h.to_string()]).collect();
        rows.push(vec!["m".repeat(900_000)]);
        let out = render(&["model"], &rows);
        assert_inert(&out, "\n");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2 + rows.len());
        assert_eq!(lines[12], "a\\nb\\r\\nc");
        assert_eq!(lines[14], "user\\u{202e}fdp.exe");
        assert!(lines
            .iter()
            .all(|l| l.chars().count() <= MAX_TABLE_CELL_CHARS));
        assert!(lines.last().unwrap().ends_with("m…"));
    }

    #[test]
    fn json_escapes_what_json_leaves_raw_and_means_the_same() {
        let v = serde_json::json!({"model": "a\u{7f}b\u{9b}c\u{202e}d\u{1b}e", "n": 1});
        let out = json(&v);
        assert!(!out.chars().any(hostile), "{out}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap(), v);
        assert_eq!(json(&serde_json::json!({"a": "b"})), r#"{"a":"b"}"#);
    }
}
