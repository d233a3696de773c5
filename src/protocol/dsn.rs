//! DSNs (`https://<key>[:<secret>]@host[:port][/path]/<project_id>`), as SDKs put them in
//! an envelope header's `dsn`: parsed once here, for the auth they carry and for the
//! header forwarded without the secret.

use super::auth::AuthError;

/// A parsed DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn<'a> {
    /// The public key (the user part).
    pub public_key: &'a str,
    /// The secret (the password part), when there is a non-empty one.
    pub secret: Option<&'a str>,
    /// The project id (the last path segment).
    pub project_id: u64,
    /// The byte range of `:secret` in the DSN text, when it has one (empty included).
    secret_span: Option<std::ops::Range<usize>>,
    text: &'a str,
}

impl<'a> Dsn<'a> {
    /// Parses `dsn`.
    ///
    /// # Errors
    /// [`AuthError::BadDsn`] when it is not an `http(s)` DSN with a user, a host and a
    /// numeric project id.
    pub fn parse(dsn: &'a str) -> Result<Dsn<'a>, AuthError> {
        let (scheme, rest) = dsn.split_once("://").ok_or(AuthError::BadDsn)?;
        if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
            return Err(AuthError::BadDsn);
        }
        let rest_at = scheme.len() + 3;
        let slash = rest.find('/').ok_or(AuthError::BadDsn)?;
        let (authority, path) = rest.split_at(slash);
        let (userinfo, host) = authority.rsplit_once('@').ok_or(AuthError::BadDsn)?;
        if host.is_empty() {
            return Err(AuthError::BadDsn);
        }
        let (public_key, secret, secret_span) = match userinfo.split_once(':') {
            Some((key, secret)) => (
                key,
                Some(secret).filter(|s| !s.is_empty()),
                Some(rest_at + key.len()..rest_at + userinfo.len()),
            ),
            None => (userinfo, None, None),
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        let project_id = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|id| id.parse::<u64>().ok())
            .ok_or(AuthError::BadDsn)?;
        Ok(Dsn {
            public_key,
            secret,
            project_id,
            secret_span,
            text: dsn,
        })
    }

    /// The DSN without the `:secret` of its user part; `None` when it has none.
    pub fn without_secret(&self) -> Option<String> {
        let span = self.secret_span.clone()?;
        let mut public = self.text.to_owned();
        public.replace_range(span, "");
        Some(public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_secret_removal() {
        let dsn = Dsn::parse("https://abc:s3cret@o1.ingest.example.com/42").unwrap();
        assert_eq!(
            (dsn.public_key, dsn.secret, dsn.project_id),
            ("abc", Some("s3cret"), 42)
        );
        assert_eq!(
            dsn.without_secret().as_deref(),
            Some("https://abc@o1.ingest.example.com/42")
        );
        let dsn = Dsn::parse("http://abc@host:9000/sub/7/?x=1").unwrap();
        assert_eq!((dsn.secret, dsn.project_id), (None, 7));
        assert_eq!(dsn.without_secret(), None);
        for bad in [
            "not a dsn",
            "ftp://a@h/1",
            "https://h/1",
            "https://a@/1",
            "https://a@h/x",
        ] {
            assert!(Dsn::parse(bad).is_err(), "{bad}");
        }
    }
}
