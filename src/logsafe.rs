//! Log field values that come from certificates, clients or peers, written so
//! that no such value can start a new log line or drive a terminal.
//!
//! Wrap a value in [`Escaped`] where it is logged with `%` (Display): control
//! characters (C0, DEL, C1: newlines, ANSI escapes) and backslashes come out
//! as Rust escapes (`\n`, `\u{1b}`, `\\`). Fields logged as `&str` are already
//! quoted and escaped by the text formatter, and the JSON formatter escapes
//! every string.

use std::fmt::{self, Display, Write};

/// `value`, escaped when displayed.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

/// `value` as an escaped `String`.
pub fn escape(value: &str) -> String {
    Escaped(value).to_string()
}

/// Passes text on with control characters and backslashes escaped.
struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if c == '\\' {
                self.0.write_str("\\\\")?;
            } else if c.is_control() {
                write!(self.0, "{}", c.escape_default())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_terminal_escapes_cannot_get_through() {
        assert_eq!(escape("cn=alice"), "cn=alice");
        assert_eq!(
            escape("a\nWARN forged\r\x1b[31mred\u{9b}2J\\x"),
            "a\\nWARN forged\\r\\u{1b}[31mred\\u{9b}2J\\\\x"
        );
        assert_eq!(escape("tab\tdel\x7f"), "tab\\tdel\\u{7f}");
        assert_eq!(escape("ünïcödé ok"), "ünïcödé ok");
        assert_eq!(
            format!("{}", Escaped(format_args!("{}-{}", "x\n", 1))),
            "x\\n-1"
        );
    }
}
