//! Sentry auth payloads: `X-Sentry-Auth`, `Authorization`, the query string and DSNs.
//!
//! Sources, in the order Relay checks them:
//!
//! 1. `X-Sentry-Auth: Sentry sentry_key=..., sentry_version=7, ...` (prefix case-insensitive);
//! 2. `Authorization: Sentry ...` (same format);
//! 3. `Authorization: Basic base64(key:secret)`;
//! 4. the query string (`?sentry_key=...&sentry_version=7`).
//!
//! Exactly one source must be present. The secret (`sentry_secret`) is parsed but never
//! printed (custom `Debug`) and never forwarded ([`Auth::to_upstream_header`]).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};

/// The highest `sentry_version` accepted; anything above is refused with 400.
pub const MAX_PROTOCOL_VERSION: u16 = 7;

/// The version assumed when a payload carries no `sentry_version`.
const DEFAULT_PROTOCOL_VERSION: u16 = 7;

/// The header SDKs use for auth.
pub const X_SENTRY_AUTH: &str = "x-sentry-auth";

/// Query parameters that make the query string an auth source. (Relay treats any query
/// containing `sentry_` as one; we ignore unrelated parameters such as `sentry_release`
/// on the security endpoint, so those never count as a second source.)
const AUTH_QUERY_KEYS: [&str; 5] = [
    "sentry_key",
    "sentry_version",
    "sentry_client",
    "sentry_secret",
    "sentry_timestamp",
];

/// The longest `sentry_client` kept (real SDKs send well under 100 bytes). A longer one
/// is dropped, not refused: it is informational, and the request stays valid; it is then
/// neither logged nor forwarded upstream.
pub const MAX_CLIENT_LEN: usize = 512;

/// The longest value of every other auth field (`sentry_key`, `sentry_version`,
/// `sentry_secret`, `sentry_timestamp`); a longer one makes the auth malformed (401).
pub const MAX_AUTH_FIELD_LEN: usize = 256;

/// Why a request's auth was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// More than one auth source (header, `Authorization`, query) was present.
    #[error("multiple authorization payloads detected")]
    MultipleSources,
    /// No auth source was present.
    #[error("missing authorization information")]
    Missing,
    /// An auth source was present but could not be parsed (no `sentry_key`, a
    /// non-numeric `sentry_version`, ...).
    #[error("malformed authorization payload")]
    Malformed,
    /// `sentry_version` is above [`MAX_PROTOCOL_VERSION`]; carries the version asked for.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u16),
    /// The public key is not 32 hex digits (with an optional `.flags` suffix).
    #[error("invalid public key")]
    BadPublicKey,
    /// A DSN (e.g. the envelope header's `dsn`) could not be parsed.
    #[error("invalid dsn")]
    BadDsn,
}

/// A project's public key (`sentry_key`): 32 hex digits, stored lowercase.
///
/// Public keys are not secrets (they sit in browser code), so `Debug` and `Display` print
/// them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectKey([u8; 32]);

impl ProjectKey {
    /// Parses exactly 32 hex digits (either case); the key is stored lowercase.
    ///
    /// # Errors
    ///
    /// [`AuthError::BadPublicKey`] for any other input.
    pub fn parse(key: &str) -> Result<Self, AuthError> {
        let bytes = key.as_bytes();
        if bytes.len() != 32 {
            return Err(AuthError::BadPublicKey);
        }
        let mut out = [0u8; 32];
        for (slot, &byte) in out.iter_mut().zip(bytes) {
            if !byte.is_ascii_hexdigit() {
                return Err(AuthError::BadPublicKey);
            }
            *slot = byte.to_ascii_lowercase();
        }
        Ok(Self(out))
    }

    /// Parses a key with optional `.flag` suffixes (`<key>.no-cache`), returning the key
    /// and whether the `no-cache` flag was set. Unknown flags are ignored.
    ///
    /// # Errors
    ///
    /// [`AuthError::BadPublicKey`] when the part before the first `.` is not a key.
    pub fn parse_with_flags(value: &str) -> Result<(Self, bool), AuthError> {
        let mut parts = value.split('.');
        let key = Self::parse(parts.next().unwrap_or(""))?;
        let no_cache = parts.any(|flag| flag == "no-cache");
        Ok((key, no_cache))
    }

    /// The key as 32 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored, so the conversion cannot fail.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// True when `other` names this key (compared case-insensitively), e.g. a public key
    /// from a project config.
    pub fn matches(&self, other: &str) -> bool {
        other.as_bytes().eq_ignore_ascii_case(&self.0)
    }
}

impl fmt::Debug for ProjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ProjectKey").field(&self.as_str()).finish()
    }
}

impl fmt::Display for ProjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The auth of one request, from whichever single source carried it.
///
/// `Debug` never prints `sentry_secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    public_key: ProjectKey,
    no_cache: bool,
    version: u16,
    client: Option<String>,
    timestamp: Option<String>,
    secret: Option<String>,
}

impl Auth {
    /// Auth for a public key alone, at the current protocol version.
    pub fn from_key(public_key: ProjectKey) -> Self {
        Self {
            public_key,
            no_cache: false,
            version: DEFAULT_PROTOCOL_VERSION,
            client: None,
            timestamp: None,
            secret: None,
        }
    }

    /// Parses the auth from a request's head. See [`Auth::from_headers`].
    ///
    /// # Errors
    ///
    /// As [`Auth::from_headers`].
    pub fn from_parts(parts: &http::request::Parts) -> Result<Self, AuthError> {
        Self::from_headers(&parts.headers, parts.uri.query())
    }

    /// Parses the auth from the request headers and the raw query string (without `?`).
    ///
    /// An `X-Sentry-Auth` or `Authorization` header without the `Sentry ` prefix, an
    /// `Authorization: Basic` value that is not base64 of `key:secret`, and a query string
    /// without any `sentry_key`/`sentry_version`/... parameter are not auth sources (as in
    /// Relay, so a proxy's own `Authorization: Bearer` does not clash).
    ///
    /// # Errors
    ///
    /// [`AuthError::MultipleSources`] when more than one source is present,
    /// [`AuthError::Missing`] when none is, and the errors of the payload itself:
    /// [`AuthError::Malformed`], [`AuthError::UnsupportedVersion`],
    /// [`AuthError::BadPublicKey`].
    pub fn from_headers(headers: &HeaderMap, query: Option<&str>) -> Result<Self, AuthError> {
        let mut source = None;
        if let Some(pairs) = headers.get(X_SENTRY_AUTH).and_then(sentry_header_pairs) {
            Source::Header(pairs).add_to(&mut source)?;
        }
        if let Some(value) = headers.get(AUTHORIZATION) {
            if let Some(pairs) = sentry_header_pairs(value) {
                Source::Header(pairs).add_to(&mut source)?;
            } else if let Some(key) = basic_auth_key(value) {
                Source::Basic(key).add_to(&mut source)?;
            }
        }
        if let Some(query) = query.filter(|q| is_auth_query(q)) {
            Source::Query(query).add_to(&mut source)?;
        }

        match source {
            None => Err(AuthError::Missing),
            Some(Source::Header(pairs)) => {
                let mut fields = Fields::default();
                for item in pairs.split(',') {
                    if let Some((key, value)) = item.split_once('=') {
                        fields.set(key.trim(), Cow::Borrowed(value.trim()));
                    }
                }
                fields.finish()
            }
            Some(Source::Basic(key)) => Fields {
                key: Some(Cow::Owned(key)),
                ..Fields::default()
            }
            .finish(),
            Some(Source::Query(query)) => {
                let mut fields = Fields::default();
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    fields.set(&decode_query_component(key), decode_query_component(value));
                }
                fields.finish()
            }
        }
    }

    /// Parses a DSN such as the envelope header's `dsn`:
    /// `https://<key>[:<secret>]@host[:port][/path]/<project_id>`.
    ///
    /// # Errors
    ///
    /// [`AuthError::BadDsn`] when the DSN is not of that shape or the project id is not a
    /// number, [`AuthError::BadPublicKey`] when the key is not 32 hex digits.
    pub fn from_dsn(dsn: &str) -> Result<(Self, u64), AuthError> {
        let dsn = super::dsn::Dsn::parse(dsn)?;
        let mut auth = Self::from_key(ProjectKey::parse(dsn.public_key)?);
        auth.secret = dsn.secret.map(str::to_owned);
        Ok((auth, dsn.project_id))
    }

    /// The public key (`sentry_key`) without flags.
    pub fn public_key(&self) -> ProjectKey {
        self.public_key
    }

    /// True when the key carried the `.no-cache` flag.
    pub fn no_cache(&self) -> bool {
        self.no_cache
    }

    /// The protocol version (major part of `sentry_version`; 7 when absent).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// `sentry_client`, the SDK's name and version, if given.
    pub fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// `sentry_timestamp` as sent, if given.
    pub fn timestamp(&self) -> Option<&str> {
        self.timestamp.as_deref()
    }

    /// True when the payload carried a `sentry_secret` (which is never forwarded).
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// The `X-Sentry-Auth` value to send upstream: key (without flags), version, and the
    /// client and timestamp when they are safe to repeat; never `sentry_secret`.
    pub fn to_upstream_header(&self) -> HeaderValue {
        let mut value = String::with_capacity(96);
        value.push_str("Sentry sentry_key=");
        value.push_str(self.public_key.as_str());
        value.push_str(", sentry_version=");
        // The version is at most MAX_PROTOCOL_VERSION (checked when parsed): one digit.
        value.push(char::from_digit(u32::from(self.version), 10).unwrap_or('7'));
        // Only what Relay forwards: key, version, client, timestamp; each bounded.
        if let Some(client) = self
            .client
            .as_deref()
            .filter(|c| c.len() <= MAX_CLIENT_LEN && is_safe_auth_value(c))
        {
            value.push_str(", sentry_client=");
            value.push_str(client);
        }
        if let Some(ts) = self
            .timestamp
            .as_deref()
            .filter(|t| t.len() <= MAX_AUTH_FIELD_LEN && is_safe_auth_value(t))
        {
            value.push_str(", sentry_timestamp=");
            value.push_str(ts);
        }
        // Every piece is visible ASCII (the key is hex, the rest is checked above), so the
        // conversion cannot fail; the keyless fallback only avoids a panic path and would be
        // refused upstream.
        HeaderValue::try_from(value)
            .unwrap_or_else(|_| HeaderValue::from_static("Sentry sentry_version=7"))
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("public_key", &self.public_key)
            .field("no_cache", &self.no_cache)
            .field("version", &self.version)
            .field("client", &self.client)
            .field("timestamp", &self.timestamp)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Where the auth was found.
enum Source<'a> {
    /// The `k=v, ...` list after a `Sentry ` prefix.
    Header(&'a str),
    /// The key decoded from `Authorization: Basic`.
    Basic(String),
    /// The raw query string.
    Query(&'a str),
}

impl<'a> Source<'a> {
    /// Records this source, refusing a second one.
    fn add_to(self, slot: &mut Option<Source<'a>>) -> Result<(), AuthError> {
        if slot.is_some() {
            return Err(AuthError::MultipleSources);
        }
        *slot = Some(self);
        Ok(())
    }
}

/// The fields of an auth payload before validation.
#[derive(Default)]
struct Fields<'a> {
    key: Option<Cow<'a, str>>,
    version: Option<Cow<'a, str>>,
    client: Option<Cow<'a, str>>,
    secret: Option<Cow<'a, str>>,
    timestamp: Option<Cow<'a, str>>,
}

impl<'a> Fields<'a> {
    fn set(&mut self, key: &str, value: Cow<'a, str>) {
        let slot = match key {
            "sentry_key" => &mut self.key,
            "sentry_version" => &mut self.version,
            "sentry_client" => &mut self.client,
            "sentry_secret" => &mut self.secret,
            "sentry_timestamp" => &mut self.timestamp,
            _ => return,
        };
        *slot = Some(value);
    }

    fn finish(self) -> Result<Auth, AuthError> {
        let too_long =
            |v: &Option<Cow<'a, str>>| v.as_ref().is_some_and(|v| v.len() > MAX_AUTH_FIELD_LEN);
        if [&self.key, &self.version, &self.secret, &self.timestamp]
            .into_iter()
            .any(too_long)
        {
            return Err(AuthError::Malformed);
        }
        let client = self.client.filter(|c| c.len() <= MAX_CLIENT_LEN);
        let key = self
            .key
            .filter(|k| !k.is_empty())
            .ok_or(AuthError::Malformed)?;
        let (public_key, no_cache) = ProjectKey::parse_with_flags(&key)?;
        let version = match self.version {
            None => DEFAULT_PROTOCOL_VERSION,
            Some(v) => v
                .split('.')
                .next()
                .and_then(|major| major.trim().parse::<u16>().ok())
                .ok_or(AuthError::Malformed)?,
        };
        if version > MAX_PROTOCOL_VERSION {
            return Err(AuthError::UnsupportedVersion(version));
        }
        let non_empty = |v: Option<Cow<'a, str>>| v.filter(|v| !v.is_empty()).map(Cow::into_owned);
        Ok(Auth {
            public_key,
            no_cache,
            version,
            client: non_empty(client),
            timestamp: non_empty(self.timestamp),
            secret: non_empty(self.secret),
        })
    }
}

/// The `k=v, ...` part of a `Sentry ...` header value, or `None` when the value does not
/// start with `Sentry ` (case-insensitive) or is not visible ASCII.
fn sentry_header_pairs(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let prefix = value.get(..7)?;
    prefix
        .eq_ignore_ascii_case("sentry ")
        .then(|| value.get(7..))
        .flatten()
}

/// The key of `Authorization: Basic base64(key:secret)`, or `None` when the value is not
/// of that form.
fn basic_auth_key(value: &HeaderValue) -> Option<String> {
    let value = value.to_str().ok()?;
    if !value.get(..6)?.eq_ignore_ascii_case("basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.get(6..)?.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (key, _secret) = decoded.split_once(':')?;
    Some(key.to_owned())
}

/// True when the query string has at least one auth parameter.
fn is_auth_query(query: &str) -> bool {
    query.contains("sentry_")
        && query.split('&').any(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            AUTH_QUERY_KEYS.contains(&&*decode_query_component(name))
        })
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space, `%XX` a
/// byte; malformed escapes are kept as they are). Borrows when nothing is escaped.
fn decode_query_component(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&b| hex_value(b));
                let lo = bytes.get(i + 2).and_then(|&b| hex_value(b));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// True when a value can be repeated in an `X-Sentry-Auth` list unchanged: visible ASCII
/// (spaces allowed), without the `,` and `=` that delimit the list.
fn is_safe_auth_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b == b' ' || b.is_ascii_graphic()) && b != b',' && b != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::error::IngestError;

    const KEY: &str = "e12d836b15bb49d7bbf99e64295d995b";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn parse(pairs: &[(&str, &str)], query: Option<&str>) -> Result<Auth, AuthError> {
        Auth::from_headers(&headers(pairs), query)
    }

    #[test]
    fn auth_fields_are_bounded_and_a_huge_client_is_never_forwarded() {
        let huge = "a".repeat(64 * 1024);
        let header = format!(
            "Sentry sentry_key={KEY}, sentry_version=7, sentry_client={huge}, sentry_timestamp=1"
        );
        let auth = parse(&[(X_SENTRY_AUTH, &header)], None).unwrap();
        assert_eq!(auth.client(), None, "a 64 KiB sentry_client is dropped");
        let upstream = auth.to_upstream_header();
        let upstream = upstream.to_str().unwrap();
        assert!(!upstream.contains("sentry_client"), "{upstream}");
        assert!(upstream.len() < 200, "{} bytes upstream", upstream.len());
        // At the limit it is kept and forwarded.
        let at_limit = "s".repeat(MAX_CLIENT_LEN);
        let header = format!("Sentry sentry_key={KEY}, sentry_client={at_limit}");
        let auth = parse(&[(X_SENTRY_AUTH, &header)], None).unwrap();
        assert!(auth
            .to_upstream_header()
            .to_str()
            .unwrap()
            .contains(&at_limit));
        // In the query too.
        let query = format!("sentry_key={KEY}&sentry_client={huge}");
        assert_eq!(parse(&[], Some(&query)).unwrap().client(), None);
        // Every other field over its bound: malformed (401).
        let long = "1".repeat(MAX_AUTH_FIELD_LEN + 1);
        for field in ["sentry_version", "sentry_secret", "sentry_timestamp"] {
            let header = format!("Sentry sentry_key={KEY}, {field}={long}");
            let err = parse(&[(X_SENTRY_AUTH, &header)], None).unwrap_err();
            assert_eq!(err, AuthError::Malformed, "{field}");
            assert_eq!(
                IngestError::Auth(err).status(),
                http::StatusCode::UNAUTHORIZED,
                "{field}"
            );
        }
        let header = format!("Sentry sentry_key={KEY}{}", "0".repeat(MAX_AUTH_FIELD_LEN));
        assert!(parse(&[(X_SENTRY_AUTH, &header)], None).is_err());
    }

    #[test]
    fn x_sentry_auth_header_with_all_keys() {
        let value = format!(
            "Sentry sentry_key={KEY}, sentry_version=7.1, sentry_client=sentry.python/1.2.3, \
             sentry_secret=s3cr3t, sentry_timestamp=1700000000.5, unknown_key=x"
        );
        let auth = parse(&[("x-sentry-auth", &value)], None).unwrap();
        assert_eq!(auth.public_key().as_str(), KEY);
        assert_eq!(auth.version(), 7);
        assert_eq!(auth.client(), Some("sentry.python/1.2.3"));
        assert_eq!(auth.timestamp(), Some("1700000000.5"));
        assert!(auth.has_secret());
        assert!(!auth.no_cache());
    }

    #[test]
    fn sentry_prefix_is_case_insensitive_and_version_defaults_to_7() {
        let auth = parse(
            &[("X-Sentry-Auth", &format!("sEnTrY sentry_key={KEY}"))],
            None,
        )
        .unwrap();
        assert_eq!(auth.version(), 7);
        assert_eq!(auth.public_key().as_str(), KEY);
    }

    #[test]
    fn authorization_sentry_header() {
        let value = format!("Sentry sentry_key={KEY},sentry_version=6");
        let auth = parse(&[("authorization", &value)], None).unwrap();
        assert_eq!(auth.version(), 6);
    }

    #[test]
    fn authorization_basic() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:secret"));
        let auth = parse(&[("authorization", &format!("Basic {encoded}"))], None).unwrap();
        assert_eq!(auth.public_key().as_str(), KEY);
        assert!(!auth.has_secret(), "the basic secret is not kept");
    }

    #[test]
    fn query_string_with_escapes() {
        let query = format!("sentry_key={KEY}&sentry_version=7&sentry_client=raven-js%2F3.0+x");
        let auth = parse(&[], Some(&query)).unwrap();
        assert_eq!(auth.public_key().as_str(), KEY);
        assert_eq!(auth.client(), Some("raven-js/3.0 x"));
    }

    #[test]
    fn key_flags_are_accepted_and_uppercase_is_normalised() {
        let upper = KEY.to_ascii_uppercase();
        let auth = parse(&[], Some(&format!("sentry_key={upper}.no-cache"))).unwrap();
        assert_eq!(auth.public_key().as_str(), KEY);
        assert!(auth.no_cache());
        assert!(auth.public_key().matches(&upper));
    }

    #[test]
    fn non_auth_query_and_foreign_authorization_are_not_sources() {
        let value = format!("Sentry sentry_key={KEY}");
        // `sentry_release` alone is not auth; `Bearer` is not Sentry auth.
        let auth = parse(
            &[("x-sentry-auth", &value), ("authorization", "Bearer abc")],
            Some("sentry_release=1.0&sentry_environment=prod"),
        )
        .unwrap();
        assert_eq!(auth.public_key().as_str(), KEY);
    }

    #[test]
    fn errors_and_their_statuses() {
        let good = format!("Sentry sentry_key={KEY}");
        let query = format!("sentry_key={KEY}");
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"))
        );
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, String)>,
            Option<&'a str>,
            AuthError,
            u16,
        );
        let cases: Vec<Case<'_>> = vec![
            ("nothing", vec![], None, AuthError::Missing, 401),
            (
                "header and query",
                vec![("x-sentry-auth", good.clone())],
                Some(query.as_str()),
                AuthError::MultipleSources,
                401,
            ),
            (
                "two headers",
                vec![
                    ("x-sentry-auth", good.clone()),
                    ("authorization", good.clone()),
                ],
                None,
                AuthError::MultipleSources,
                401,
            ),
            (
                "header and basic",
                vec![("x-sentry-auth", good.clone()), ("authorization", basic)],
                None,
                AuthError::MultipleSources,
                401,
            ),
            (
                "no key",
                vec![("x-sentry-auth", "Sentry sentry_version=7".into())],
                None,
                AuthError::Malformed,
                401,
            ),
            (
                "empty key",
                vec![(
                    "x-sentry-auth",
                    "Sentry sentry_key=, sentry_version=7".into(),
                )],
                None,
                AuthError::Malformed,
                401,
            ),
            (
                "bad version",
                vec![("x-sentry-auth", format!("{good}, sentry_version=seven"))],
                None,
                AuthError::Malformed,
                401,
            ),
            (
                "version 8",
                vec![("x-sentry-auth", format!("{good}, sentry_version=8.0"))],
                None,
                AuthError::UnsupportedVersion(8),
                400,
            ),
            (
                "short key",
                vec![("x-sentry-auth", "Sentry sentry_key=abc".into())],
                None,
                AuthError::BadPublicKey,
                400,
            ),
            (
                "non-hex key",
                vec![(
                    "x-sentry-auth",
                    "Sentry sentry_key=zzzd836b15bb49d7bbf99e64295d995b".into(),
                )],
                None,
                AuthError::BadPublicKey,
                400,
            ),
            (
                "query without key",
                vec![],
                Some("sentry_version=7"),
                AuthError::Malformed,
                401,
            ),
            (
                "header without prefix",
                vec![("x-sentry-auth", format!("sentry_key={KEY}"))],
                None,
                AuthError::Missing,
                401,
            ),
        ];
        let mut names = std::collections::HashSet::new();
        for (name, hdrs, query, want, status) in cases {
            assert!(names.insert(name), "duplicate case name {name}");
            let pairs: Vec<(&str, &str)> = hdrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let got = parse(&pairs, query).unwrap_err();
            assert_eq!(got, want, "case {name}");
            let error = IngestError::Auth(got);
            assert_eq!(error.status().as_u16(), status, "case {name}");
            assert!(!error.detail().is_empty());
        }
    }

    #[test]
    fn secret_never_in_debug_or_upstream_header() {
        let value = format!(
            "Sentry sentry_key={KEY}, sentry_secret=hunter2hunter2, sentry_client=sdk/1.0, \
             sentry_timestamp=123"
        );
        let auth = parse(&[("x-sentry-auth", &value)], None).unwrap();
        let debug = format!("{auth:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("[redacted]"));
        let upstream = auth.to_upstream_header();
        let upstream = upstream.to_str().unwrap();
        assert_eq!(
            upstream,
            format!(
                "Sentry sentry_key={KEY}, sentry_version=7, sentry_client=sdk/1.0, \
                 sentry_timestamp=123"
            )
        );
        // The upstream value parses back to the same public auth.
        let again = parse(&[("x-sentry-auth", upstream)], None).unwrap();
        assert_eq!(again.public_key(), auth.public_key());
        assert!(!again.has_secret());
    }

    #[test]
    fn upstream_header_drops_unsafe_client_and_flags() {
        let query = format!("sentry_key={KEY}.no-cache&sentry_version=5&sentry_client=a%2Cb%3Dc");
        let auth = parse(&[], Some(&query)).unwrap();
        assert_eq!(auth.client(), Some("a,b=c"));
        assert_eq!(
            auth.to_upstream_header().to_str().unwrap(),
            format!("Sentry sentry_key={KEY}, sentry_version=5")
        );
    }

    #[test]
    fn dsn_parsing() {
        let (auth, pid) = Auth::from_dsn(&format!("https://{KEY}@o1.ingest.sentry.io/42")).unwrap();
        assert_eq!(pid, 42);
        assert_eq!(auth.public_key().as_str(), KEY);
        assert!(!auth.has_secret());

        let (auth, pid) =
            Auth::from_dsn(&format!("http://{KEY}:sec@localhost:9000/sub/path/7/")).unwrap();
        assert_eq!(pid, 7);
        assert!(auth.has_secret());

        for bad in [
            "not a dsn".to_owned(),
            format!("ftp://{KEY}@host/1"),
            format!("https://{KEY}@host"),
            format!("https://{KEY}@host/"),
            format!("https://{KEY}@host/abc"),
            format!("https://{KEY}@/1"),
            "https://host/1".to_owned(),
        ] {
            assert_eq!(
                Auth::from_dsn(&bad).unwrap_err(),
                AuthError::BadDsn,
                "{bad}"
            );
        }
        assert_eq!(
            Auth::from_dsn("https://abc@host/1").unwrap_err(),
            AuthError::BadPublicKey
        );
    }
}
