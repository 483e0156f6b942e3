//! A value that must never be printed: the type makes leaking it a compile-time decision.
//!
//! Secrets travel from Secrets/ConfigMaps/env into scaler configs and clients. Every config
//! and error type derives `Debug`, so a plain `String` field would end up in logs the first
//! time someone writes `{:?}`. [`Secret`] prints `[redacted]` in `Debug` and has no `Display`;
//! the only way to the value is [`Secret::expose`], which is easy to grep for.

use std::fmt;

/// A secret value; `Debug` prints `[redacted]`, there is no `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself. Call it only where the value goes to the wire, never into text
    /// that a person or a log can read.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// Replaces every occurrence of each secret in `text` with `[redacted]`.
///
/// Foreign error texts (client libraries, servers echoing a request) can contain a password
/// or a URL with userinfo; this is the last line of defence before such a text is stored in
/// one of our errors. Secrets shorter than 3 characters are skipped: masking them would
/// garble unrelated text and they could not be hidden anyway.
pub fn scrub(text: &str, secrets: &[Secret<String>]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        let v = s.expose();
        if v.len() >= 3 && out.contains(v.as_str()) {
            out = out.replace(v.as_str(), "[redacted]");
        }
    }
    out
}

/// A URL made fit to print: userinfo and query string are dropped (passwords and API keys
/// live there), scheme, host, port and path are kept.
pub fn printable_url(raw: &str) -> String {
    // `user:pw@host:1` parses as a URL with scheme `user`; only `scheme://` counts here.
    match url::Url::parse(raw).ok().filter(|_| raw.contains("://")) {
        Some(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        // Not a URL: keep only what cannot be a credential, the part after any '@'.
        None => raw.rsplit('@').next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-canary".to_owned());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s)), "Some([redacted])");
    }

    #[test]
    fn scrub_masks_every_occurrence() {
        let secrets = [Secret::from("pa55word")];
        assert_eq!(
            scrub("login pa55word failed (pa55word)", &secrets),
            "login [redacted] failed ([redacted])"
        );
    }

    #[test]
    fn printable_url_drops_userinfo_and_query() {
        assert_eq!(
            printable_url("amqp://user:pw@127.0.0.1:5672/vh?heartbeat=5"),
            "amqp://127.0.0.1:5672/vh"
        );
        assert_eq!(printable_url("user:pw@host:1"), "host:1");
    }
}
