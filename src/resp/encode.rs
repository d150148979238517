//! Small RESP writers and C-string helpers shared by everything that answers
//! locally (AUTH/HELLO, ACL subcommands, errors) or sends commands upstream.

/// `args` as a RESP multibulk command.
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    header(&mut out, b'*', args.len());
    for a in args {
        bulk(&mut out, a);
    }
    out
}

/// Appends a bulk string.
pub fn bulk(out: &mut Vec<u8>, s: &[u8]) {
    header(out, b'$', s.len());
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

/// Appends an aggregate or length header: `kind` (`*`, `%`, `~`, `$`...) then `n`.
pub fn header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An array of bulk strings.
pub fn bulk_array<'a>(items: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    header(&mut out, b'*', items.len());
    for item in items {
        bulk(&mut out, item);
    }
    out
}

/// What C's `%s` sees of an argument: the bytes before its first NUL.
pub fn c_str(s: &[u8]) -> &[u8] {
    match memchr::memchr(0, s) {
        Some(nul) => &s[..nul],
        None => s,
    }
}

/// `!strcasecmp(arg, keyword)` in the C locale, as Redis compares every option
/// keyword: ASCII case folding, `arg` cut at its first NUL. `keyword` has no NUL.
pub fn is_keyword(arg: &[u8], keyword: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(keyword.as_bytes())
}

/// A byte as Redis puts it in an error text: CR and LF become spaces
/// (Redis sanitises error messages so they stay on one line).
pub fn error_byte(b: u8) -> u8 {
    if b == b'\r' || b == b'\n' {
        b' '
    } else {
        b
    }
}

/// Appends `s` to an error text, sanitised like [`error_byte`].
pub fn error_text(out: &mut Vec<u8>, s: &[u8]) {
    out.extend(s.iter().map(|&b| error_byte(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers() {
        assert_eq!(command(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(
            bulk_array([&b"a"[..], b""].into_iter()),
            b"*2\r\n$1\r\na\r\n$0\r\n\r\n"
        );
        assert_eq!(c_str(b"ab\0cd"), b"ab");
        assert!(is_keyword(b"SKIP\0x", "skip"));
        assert!(is_keyword(b"sKiP", "skip"));
        assert!(!is_keyword(b"skipx", "skip"));
        assert!(!is_keyword(b"\0skip", "skip"));
        let mut e = Vec::new();
        error_text(&mut e, b"a\r\nb");
        assert_eq!(e, b"a  b");
    }
}
