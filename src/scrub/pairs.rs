//! Pair lists given as strings: query strings and cookie headers.

use std::borrow::Cow;

use super::json::{Bump, Value};

/// Splits a query string (`a=b&c=d`, percent-decoded) or a cookie header (`a=b; c=d`)
/// into `[key, value]` pairs, in `bump`.
pub(super) fn parse_pairs<'a>(bump: &'a Bump, text: &str, cookies: bool) -> &'a mut [Value<'a>] {
    let text = if cookies {
        text
    } else {
        text.strip_prefix('?').unwrap_or(text)
    };
    let sep = if cookies { ';' } else { '&' };
    let pairs: Vec<Value<'a>> = text
        .split(sep)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (k, v) = if cookies {
                (Cow::Borrowed(k.trim()), Cow::Borrowed(v.trim()))
            } else {
                (Cow::Owned(percent_decode(k)), Cow::Owned(percent_decode(v)))
            };
            Value::array_in(
                bump,
                [Value::string_in(bump, &k), Value::string_in(bump, &v)],
            )
        })
        .collect();
    bump.alloc_slice_fill_iter(pairs)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_and_cookies() {
        let pairs = |text, cookies| {
            parse_pairs(&Bump::new(), text, cookies)
                .iter()
                .map(|p| match p {
                    Value::Array(kv) => (
                        kv[0].as_str().unwrap().into_owned(),
                        kv[1].as_str().unwrap().into_owned(),
                    ),
                    _ => unreachable!("pairs are arrays"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pairs("?a=1&b=x%40y.io&c&d=a+b&e=%zz", false),
            [
                ("a", "1"),
                ("b", "x@y.io"),
                ("c", ""),
                ("d", "a b"),
                ("e", "%zz")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(
            pairs("sessionid=abc; theme = dark ;x=%41", true),
            [("sessionid", "abc"), ("theme", "dark"), ("x", "%41")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert!(pairs("", false).is_empty());
    }
}
