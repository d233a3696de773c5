//! Humane config values: durations (`"5s"`), byte sizes (`"1MiB"`) and IP blocks.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses a duration written as one or more `<number><unit>` parts, units `ms`, `s`, `m`
/// and `h`, e.g. `"5s"`, `"250ms"`, `"2m"`, `"1m30s"`, `"1.5s"`.
///
/// # Errors
///
/// A message saying what form is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a duration such as \"5s\", \"250ms\" or \"2m\"";
    let s = text.trim();
    if s.is_empty() {
        return Err(EXPECTED.to_owned());
    }
    let mut rest = s;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let value: f64 = number.parse().map_err(|_| EXPECTED.to_owned())?;
        let seconds_per_unit = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("missing unit: {EXPECTED}")),
            _ => return Err(format!("unknown unit {unit:?}: {EXPECTED}")),
        };
        let part = Duration::try_from_secs_f64(value * seconds_per_unit)
            .map_err(|_| "duration out of range".to_owned())?;
        total = total
            .checked_add(part)
            .ok_or_else(|| "duration out of range".to_owned())?;
        rest = next.trim_start();
    }
    Ok(total)
}

/// Parses a byte size: a plain number of bytes, or a number with a unit `B`, `KB`, `MB`,
/// `GB` (powers of 1000) or `KiB`, `MiB`, `GiB` (powers of 1024), case-insensitive,
/// e.g. `"1MiB"`, `"512 KiB"`, `"200MB"`.
///
/// # Errors
///
/// A message saying what form is expected.
pub fn parse_size(text: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected a size such as 1048576, \"512KiB\" or \"1MiB\"";
    let s = text.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: u64 = number.parse().map_err(|_| EXPECTED.to_owned())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(format!("unknown unit {:?}: {EXPECTED}", unit.trim())),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| "size out of range".to_owned())
}

/// Parses an `IP:PORT` listen address.
pub(super) fn to_addr(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not an IP:PORT address (e.g. \"127.0.0.1:3000\")"))
}

/// A byte size as written in the config: an integer or a string with a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByteSize {
    /// A plain number of bytes.
    Bytes(u64),
    /// A string such as `"1MiB"`, checked by [`ByteSize::bytes`].
    Text(String),
}

impl ByteSize {
    /// The number of bytes.
    ///
    /// # Errors
    ///
    /// The text form does not parse (see [`parse_size`]).
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            ByteSize::Bytes(n) => Ok(*n),
            ByteSize::Text(s) => parse_size(s),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ByteSize::Bytes(n) => serializer.serialize_u64(*n),
            ByteSize::Text(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes or a size such as \"1MiB\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize::Bytes(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize::Bytes)
                    .map_err(|_| E::custom("a size must not be negative"))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_size(v).map_err(E::custom)?;
                Ok(ByteSize::Text(v.to_owned()))
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        let cases: &[(&str, Duration)] = &[
            ("5s", Duration::from_secs(5)),
            ("250ms", Duration::from_millis(250)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            (" 1.5s ", Duration::from_millis(1500)),
            ("10 s", Duration::from_secs(10)),
            ("0s", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(*expected), "{text}");
        }
    }

    #[test]
    fn durations_without_a_known_unit_are_refused() {
        for text in ["", "5", "5 sec", "s", "-1s", "5d", "1.2.3s"] {
            assert!(parse_duration(text).is_err(), "{text:?} should fail");
        }
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        let cases: &[(&str, u64)] = &[
            ("1048576", 1_048_576),
            ("1MiB", 1_048_576),
            ("512 KiB", 524_288),
            ("200mib", 200 * 1_048_576),
            ("1MB", 1_000_000),
            ("3kb", 3000),
            ("2GiB", 2 << 30),
            ("17B", 17),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text), Ok(*expected), "{text}");
        }
        for text in [
            "",
            "MiB",
            "1.5MiB",
            "1 TiB",
            "-1",
            "99999999999999999999GiB",
        ] {
            assert!(parse_size(text).is_err(), "{text:?} should fail");
        }
    }
}
