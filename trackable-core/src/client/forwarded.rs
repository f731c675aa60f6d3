//! Reading forwarding headers from the right, within fixed bounds.
//!
//! Nothing here allocates or looks at more than `MAX_ELEMENT_LEN + 1` bytes
//! per list element, so the caller bounds the total work by bounding the
//! number of elements it asks for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest list element (between two commas) that is parsed. A node is at most
/// 47 bytes (`[ffff:…:ffff]:65535`); a `Forwarded` element also carries `by`,
/// `proto` and `host`. Anything longer is unparseable.
pub(super) const MAX_ELEMENT_LEN: usize = 512;

/// Longest unescaped `for=` value of a `Forwarded` element.
const MAX_NODE_LEN: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Syntax {
    XForwardedFor,
    Forwarded,
}

/// One list element of a forwarding header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Entry {
    /// Only whitespace between two commas: list syntax, not a hop.
    Empty,
    /// A hop; `None` when it does not name a usable address.
    Node(Option<IpAddr>),
}

/// The elements of one header line, rightmost first.
#[derive(Debug)]
pub(super) struct RevEntries<'a> {
    rest: Option<&'a [u8]>,
    syntax: Syntax,
}

impl<'a> RevEntries<'a> {
    pub(super) fn new(line: &'a [u8], syntax: Syntax) -> Self {
        Self {
            rest: Some(line),
            syntax,
        }
    }
}

impl Iterator for RevEntries<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        let rest = self.rest?;
        let start = rest.len().saturating_sub(MAX_ELEMENT_LEN + 1);
        let window = &rest[start..];
        let comma = match self.syntax {
            Syntax::XForwardedFor => window.iter().rposition(|&b| b == b','),
            Syntax::Forwarded => rfind_unquoted_comma(window),
        };
        match comma {
            Some(i) => {
                let at = start + i;
                self.rest = Some(&rest[..at]);
                Some(classify(&rest[at + 1..], self.syntax))
            }
            None if start == 0 => {
                self.rest = None;
                Some(classify(rest, self.syntax))
            }
            None => {
                // No separator within the bound: the element is too long to be
                // a node, and whatever lies further left cannot be reached
                // without trusting it.
                self.rest = None;
                Some(Entry::Node(None))
            }
        }
    }
}

/// The last comma of `window` outside a quoted string, reading from the
/// right. The end of `window` is outside any quoted string, since it is the
/// end of a line or the position of an earlier unquoted comma.
fn rfind_unquoted_comma(window: &[u8]) -> Option<usize> {
    let mut in_quote = false;
    for i in (0..window.len()).rev() {
        match window[i] {
            b'"' if !in_quote => in_quote = true,
            b'"' if !is_escaped(window, i) => in_quote = false,
            b',' if !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

/// Whether the byte at `i` is preceded by an odd number of backslashes.
fn is_escaped(bytes: &[u8], i: usize) -> bool {
    bytes[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

fn classify(element: &[u8], syntax: Syntax) -> Entry {
    let element = element.trim_ascii();
    if element.is_empty() {
        return Entry::Empty;
    }
    Entry::Node(match syntax {
        Syntax::XForwardedFor => parse_node(element, false),
        Syntax::Forwarded => parse_forwarded_element(element),
    })
}

/// The `for` node of one RFC 7239 element (`for=…;proto=…;by=…`).
///
/// Any malformed pair, a missing or repeated `for`, or a `for` that is
/// `unknown` or obfuscated (`_hidden`) makes the element unusable.
fn parse_forwarded_element(element: &[u8]) -> Option<IpAddr> {
    let mut node = None;
    for pair in SplitUnquoted::new(element, b';') {
        let pair = pair.trim_ascii();
        if pair.is_empty() {
            continue;
        }
        let eq = pair.iter().position(|&b| b == b'=')?;
        let name = pair[..eq].trim_ascii();
        let value = parse_value(pair[eq + 1..].trim_ascii())?;
        if name.is_empty() {
            return None;
        }
        if name.eq_ignore_ascii_case(b"for") {
            if node.is_some() {
                return None;
            }
            node = Some(value);
        }
    }
    let value = node?;
    let mut buf = [0u8; MAX_NODE_LEN];
    let node = value.unescape(&mut buf)?;
    if node.eq_ignore_ascii_case(b"unknown") || node.first() == Some(&b'_') {
        return None;
    }
    parse_node(node, true)
}

/// A parameter value: a token, or the inside of a quoted string.
#[derive(Clone, Copy)]
struct Value<'a> {
    raw: &'a [u8],
    escaped: bool,
}

impl<'a> Value<'a> {
    fn unescape<'b>(self, buf: &'b mut [u8; MAX_NODE_LEN]) -> Option<&'b [u8]>
    where
        'a: 'b,
    {
        if !self.escaped {
            return Some(self.raw);
        }
        let mut len = 0;
        let mut bytes = self.raw.iter();
        while let Some(&b) = bytes.next() {
            let b = if b == b'\\' { *bytes.next()? } else { b };
            *buf.get_mut(len)? = b;
            len += 1;
        }
        Some(&buf[..len])
    }
}

/// A token, or a complete quoted string (RFC 9110 §5.6.4) and nothing after
/// it. Unquoted values are accepted leniently (`for=[2001:db8::1]`) as long
/// as they hold no quote or whitespace.
fn parse_value(value: &[u8]) -> Option<Value<'_>> {
    let Some(quoted) = value.strip_prefix(b"\"") else {
        if value.is_empty() || value.iter().any(|&b| b == b'"' || b == b' ' || b == b'\t') {
            return None;
        }
        return Some(Value {
            raw: value,
            escaped: false,
        });
    };
    let mut escaped = false;
    let mut i = 0;
    while i < quoted.len() {
        match quoted[i] {
            b'\\' => {
                escaped = true;
                i += 2;
            }
            b'"' => {
                return (i + 1 == quoted.len()).then_some(Value {
                    raw: &quoted[..i],
                    escaped,
                });
            }
            _ => i += 1,
        }
    }
    None
}

/// Splits on `sep` outside quoted strings, left to right.
struct SplitUnquoted<'a> {
    rest: Option<&'a [u8]>,
    sep: u8,
}

impl<'a> SplitUnquoted<'a> {
    fn new(bytes: &'a [u8], sep: u8) -> Self {
        Self {
            rest: Some(bytes),
            sep,
        }
    }
}

impl<'a> Iterator for SplitUnquoted<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let mut in_quote = false;
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                b'\\' if in_quote => i += 1,
                b'"' => in_quote = !in_quote,
                b if b == self.sep && !in_quote => {
                    self.rest = Some(&rest[i + 1..]);
                    return Some(&rest[..i]);
                }
                _ => {}
            }
            i += 1;
        }
        self.rest = None;
        Some(rest)
    }
}

/// An address with an optional port: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:443`. With `obfuscated_port`, RFC 7239
/// obfuscated ports (`:_abc`) are accepted too.
///
/// Zones (`fe80::1%eth0`) and the unspecified addresses are rejected;
/// IPv4-mapped IPv6 addresses come back as IPv4.
pub(super) fn parse_node(node: &[u8], obfuscated_port: bool) -> Option<IpAddr> {
    let node = std::str::from_utf8(node).ok()?;
    let ip = if let Some(bracketed) = node.strip_prefix('[') {
        let (inner, after) = bracketed.split_once(']')?;
        if !after.is_empty() {
            check_port(after.strip_prefix(':')?, obfuscated_port)?;
        }
        IpAddr::V6(inner.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(ip) = node.parse::<IpAddr>() {
        ip
    } else {
        let (host, port) = node.split_once(':')?;
        check_port(port, obfuscated_port)?;
        IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
    };
    let ip = ip.to_canonical();
    (!ip.is_unspecified()).then_some(ip)
}

fn check_port(port: &str, obfuscated: bool) -> Option<()> {
    let valid = if let Some(obf) = port.strip_prefix('_') {
        obfuscated
            && !obf.is_empty()
            && obf
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    } else {
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
    };
    valid.then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(line: &str, syntax: Syntax) -> Vec<Entry> {
        RevEntries::new(line.as_bytes(), syntax).collect()
    }

    fn ip(s: &str) -> Entry {
        Entry::Node(Some(s.parse().unwrap()))
    }

    #[test]
    fn xff_elements_come_rightmost_first() {
        assert_eq!(
            entries(" 1.2.3.4 ,, 5.6.7.8:80,", Syntax::XForwardedFor),
            [Entry::Empty, ip("5.6.7.8"), Entry::Empty, ip("1.2.3.4")]
        );
        assert_eq!(entries("", Syntax::XForwardedFor), [Entry::Empty]);
    }

    #[test]
    fn forwarded_commas_inside_quotes_do_not_split() {
        assert_eq!(
            entries(
                r#"for=1.2.3.4;host="a,b", For="[2001:db8::1]:443""#,
                Syntax::Forwarded
            ),
            [ip("2001:db8::1"), ip("1.2.3.4")]
        );
        assert_eq!(
            entries(r#"for="5.6.7.8";by="x\",y""#, Syntax::Forwarded),
            [ip("5.6.7.8")]
        );
    }

    #[test]
    fn forwarded_escapes_in_for_are_undone() {
        assert_eq!(
            entries(r#"for="\1.2.3.4""#, Syntax::Forwarded),
            [ip("1.2.3.4")]
        );
    }

    #[test]
    fn too_long_element_stops_the_walk() {
        let line = format!("1.2.3.4,{}", "9".repeat(MAX_ELEMENT_LEN + 1));
        assert_eq!(entries(&line, Syntax::XForwardedFor), [Entry::Node(None)]);
        let line = format!("1.2.3.4,{}", " ".repeat(MAX_ELEMENT_LEN - 7) + "5.6.7.8");
        assert_eq!(
            entries(&line, Syntax::XForwardedFor),
            [ip("5.6.7.8"), ip("1.2.3.4")]
        );
    }

    #[test]
    fn nodes() {
        for ok in [
            "1.2.3.4",
            "1.2.3.4:65535",
            "[::1]",
            "[::1]:1",
            "::1",
            "::ffff:1.2.3.4",
        ] {
            assert!(parse_node(ok.as_bytes(), false).is_some(), "{ok}");
        }
        for bad in [
            "",
            "1.2.3.4:",
            "1.2.3.4:65536",
            "1.2.3.4:+1",
            "[::1",
            "[::1]x",
            "[1.2.3.4]",
            "fe80::1%eth0",
            "[fe80::1%25eth0]",
            "0.0.0.0",
            "::",
            "[::]:80",
            "1.2.3.4:_x",
            "01.2.3.4",
            "unknown",
            "::1:80:x",
        ] {
            assert_eq!(parse_node(bad.as_bytes(), false), None, "{bad}");
        }
        assert!(parse_node(b"[::1]:_x", true).is_some());
        assert_eq!(parse_node(b"[::1]:_", true), None);
    }
}
