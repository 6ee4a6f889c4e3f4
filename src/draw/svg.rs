//! Text for SVG and HTML: escaping, and numbers short enough to keep a
//! picture of thousands of shapes small.

use std::fmt::Write as _;

/// `text` with `&`, `<`, `>`, `"` and `'` escaped: safe in element text and
/// in a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `x` with at most one decimal (and none when it is whole).
pub fn num(x: f64) -> String {
    let x = if x.is_finite() { x } else { 0.0 };
    let r = (x * 10.0).round() / 10.0;
    let mut s = String::new();
    if r == r.trunc() {
        let _ = write!(s, "{}", r as i64);
    } else {
        let _ = write!(s, "{r:.1}");
    }
    s
}

/// A byte count for people: `512 B`, `1.5 kB`, `12.3 MB`, `4.0 GB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Milliseconds for people: `840 ms`, `2.41 s`, `3 min 05 s`.
pub fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{} ms", ms.round() as u64)
    } else if ms < 60_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        let s = (ms / 1000.0).round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

/// The width in pixels of `text` in the pictures' monospace font at `size`
/// pixels (each character is 0.6 em wide in the usual monospace fonts).
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.6
}

/// The font of every picture: a monospace one the system has (no font file
/// is loaded), so that [`text_width`] holds.
pub const FONT: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(escape("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&#39; ");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(2.345), "2.3");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(bytes(12_300_000), "12.3 MB");
        assert_eq!(duration(840.4), "840 ms");
        assert_eq!(duration(2410.0), "2.41 s");
        assert_eq!(duration(185_000.0), "3 min 05 s");
    }
}
