//! The checks of the NATS keys: a `[[sources]]` table of kind `"nats-jetstream"` and the
//! `[relay]` table (docs/scale-out.md).
//!
//! Owns: server lists, credentials, stream, consumer and subject names as NATS takes them,
//! and what a daemon that reads a stream may not have besides it. Must not: dial anything.

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::check::Check;
use super::raw::{RawRelay, RawSource, RawUrl};
use super::*;

/// The source name of a nats-jetstream source without `name`.
pub const JETSTREAM_DEFAULT_NAME: &str = "nats-jetstream";

/// Whether `s` is a subject: dot-separated non-empty tokens without whitespace, where `*` is
/// a whole token and `>` only the whole last one; `wildcards` false refuses both.
pub fn valid_subject(s: &str, wildcards: bool) -> bool {
    let tokens: Vec<&str> = s.split('.').collect();
    let last = tokens.len() - 1;
    tokens.iter().enumerate().all(|(i, t)| {
        !t.is_empty()
            && !t.chars().any(|c| c.is_whitespace() || c.is_control())
            && match *t {
                "*" => wildcards,
                ">" => wildcards && i == last,
                t => !t.contains(['*', '>']),
            }
    })
}

/// Whether `subject` (no wildcards) is matched by `filter` (wildcards allowed).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let f: Vec<&str> = filter.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    for (i, t) in f.iter().enumerate() {
        match *t {
            ">" => return s.len() > i,
            "*" if i < s.len() => {}
            t if s.get(i) == Some(&t) => {}
            _ => return false,
        }
    }
    f.len() == s.len()
}

impl Check<'_> {
    /// A stream or consumer name: no whitespace, `.`, `*`, `>` or path separators.
    fn nats_name(&self, v: Spanned<String>, what: &str) -> Result<String, ConfigError> {
        let n = v.get_ref();
        let bad = n.is_empty()
            || n.len() > 128
            || n.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
            });
        if bad {
            return self.err(
                v.span(),
                format!("not a {what}: {n:?} (1 to 128 characters, none of . * > / \\ or spaces)"),
            );
        }
        Ok(v.into_inner())
    }

    fn nats_subject(
        &self,
        v: Spanned<String>,
        wildcards: bool,
        example: &str,
    ) -> Result<String, ConfigError> {
        if !valid_subject(v.get_ref(), wildcards) {
            let what = if wildcards {
                "a subject"
            } else {
                "a subject without wildcards"
            };
            return self.err(
                v.span(),
                format!("not {what}: {:?} (want e.g. {example:?})", v.get_ref()),
            );
        }
        Ok(v.into_inner())
    }

    /// `url`, the credentials and `ca` of a table that dials NATS.
    #[allow(clippy::too_many_arguments)]
    fn nats_connection(
        &self,
        table_span: Range<usize>,
        table: &str,
        url: Option<Spanned<RawUrl>>,
        username: Option<Spanned<String>>,
        password: Option<Spanned<String>>,
        token: Option<Spanned<String>>,
        ca: Option<Spanned<String>>,
    ) -> Result<NatsConnection, ConfigError> {
        let key = |k: &str| format!("{table}.{k}");
        let Some(url) = url else {
            return self.err_key(
                table_span,
                key("url"),
                "required: the NATS servers, e.g. [\"nats://10.0.0.1:4222\", \"nats://10.0.0.2:4222\"]",
            );
        };
        let span = url.span();
        let servers = match url.into_inner() {
            RawUrl::One(u) => vec![u],
            RawUrl::Many(list) => list,
        };
        if servers.is_empty() {
            return self.err(span, "name at least one NATS server");
        }
        for s in &servers {
            let rest = s
                .strip_prefix("nats://")
                .or_else(|| s.strip_prefix("tls://"))
                .unwrap_or(s);
            if rest.contains('@') {
                return self.err(
                    span,
                    format!("{s:?}: put credentials in username and password (or token), not in the url"),
                );
            }
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
            if host.is_empty()
                || host.contains(['/', ' '])
                || !port_ok
                || s.contains("://") && !s.starts_with("nats://") && !s.starts_with("tls://")
            {
                return self.err(
                    span,
                    format!("not a NATS server: {s:?} (want e.g. \"nats://10.0.0.1:4222\" or \"tls://nats.example.net:4222\")"),
                );
            }
        }
        let auth = match (username, password, token) {
            (None, None, None) => NatsAuth::None,
            (Some(u), Some(p), None) => {
                if u.get_ref().is_empty() {
                    return self.err(u.span(), "must not be empty");
                }
                NatsAuth::UserPassword {
                    user: u.into_inner(),
                    password: Secret(p.into_inner()),
                }
            }
            (None, None, Some(t)) => {
                if t.get_ref().is_empty() {
                    return self.err(t.span(), "must not be empty");
                }
                NatsAuth::Token(Secret(t.into_inner()))
            }
            (Some(u), None, None) => {
                return self.err_key(u.span(), key("password"), "username needs a password")
            }
            (None, Some(p), None) => {
                return self.err_key(p.span(), key("username"), "password needs a username")
            }
            (_, _, Some(t)) => {
                return self.err(t.span(), "give username and password, or token, not both")
            }
        };
        let ca = match ca {
            Some(c) if c.get_ref().trim().is_empty() => {
                return self.err(
                    c.span(),
                    "must be the path of a PEM file of CA certificates",
                )
            }
            Some(c) => Some(PathBuf::from(c.into_inner())),
            None => None,
        };
        Ok(NatsConnection { servers, auth, ca })
    }

    /// A `[[sources]]` table of kind `"nats-jetstream"`.
    pub(super) fn jetstream(
        &self,
        mut raw: RawSource,
        table: &str,
        span: Range<usize>,
    ) -> Result<JetStreamSource, ConfigError> {
        let key = |k: &str| format!("{table}.{k}");
        let foreign = [
            ("mode", raw.mode.as_ref().map(|v| v.span())),
            ("headers", raw.headers.as_ref().map(|_| span.clone())),
            ("max_frame", raw.max_frame.as_ref().map(|v| v.span())),
            ("clock", raw.clock.as_ref().map(|_| span.clone())),
            ("delay", raw.delay.as_ref().map(|_| span.clone())),
            ("max_lag", raw.max_lag.as_ref().map(|_| span.clone())),
            ("idle", raw.idle.as_ref().map(|_| span.clone())),
            ("ping_every", raw.ping_every.as_ref().map(|v| v.span())),
            ("ping_timeout", raw.ping_timeout.as_ref().map(|v| v.span())),
            ("address", raw.address.as_ref().map(|v| v.span())),
            ("secret", raw.secret.as_ref().map(|v| v.span())),
            ("path", raw.path.as_ref().map(|v| v.span())),
            ("agent_id", raw.agent_id.as_ref().map(|v| v.span())),
            (
                "acw_reasons",
                raw.acw_reasons.as_ref().map(|_| span.clone()),
            ),
            (
                "auto_pause_reason",
                raw.auto_pause_reason.as_ref().map(|v| v.span()),
            ),
            ("break_reason", raw.break_reason.as_ref().map(|v| v.span())),
            (
                "reorder_window",
                raw.reorder_window.as_ref().map(|v| v.span()),
            ),
        ];
        if let Some((k, Some(s))) = foreign.into_iter().find(|(_, s)| s.is_some()) {
            return self.err_key(s, key(k), "not a key of kind = \"nats-jetstream\"");
        }
        let name = match raw.name.take() {
            Some(n) => {
                let n = self.id(n, "the source name")?;
                if n.get_ref() == API_SOURCE {
                    return self.err(n.span(), format!("{API_SOURCE:?} is reserved for the API"));
                }
                n.into_inner()
            }
            None => JETSTREAM_DEFAULT_NAME.to_string(),
        };
        let connection = self.nats_connection(
            span.clone(),
            table,
            raw.url.take(),
            raw.username.take(),
            raw.password.take(),
            raw.token.take(),
            raw.ca.take(),
        )?;
        let required = |v: Option<Spanned<String>>, k: &str, what: &str| match v {
            Some(v) => Ok(v),
            None => self.err_key(span.clone(), key(k), format!("required: {what}")),
        };
        let stream = self.nats_name(
            required(raw.stream.take(), "stream", "the stream's name")?,
            "stream name",
        )?;
        let durable = self.nats_name(
            required(
                raw.durable.take(),
                "durable",
                "this daemon's consumer name (one per daemon, e.g. \"floorwatch-a\")",
            )?,
            "consumer name",
        )?;
        let subject = required(
            raw.subject.take(),
            "subject",
            "the subject to read, e.g. \"floor.site-a.>\"",
        )?;
        let subject_span = subject.span();
        let subject = self.nats_subject(subject, true, "floor.site-a.>")?;
        let api_subject = match raw.api_subject.take() {
            Some(a) => {
                let a_span = a.span();
                let a = self.nats_subject(a, false, "floor.site-a.api")?;
                if !subject_matches(&subject, &a) {
                    return self.err(
                        a_span,
                        format!("{a:?} is not matched by subject {subject:?}: this daemon would never read back what its API publishes"),
                    );
                }
                a
            }
            None if valid_subject(&subject, false) => subject.clone(),
            None => match subject.strip_suffix(".>") {
                Some(prefix) if valid_subject(prefix, false) => format!("{prefix}.api"),
                _ => {
                    return self.err_key(
                        subject_span,
                        key("api_subject"),
                        "required with this subject: where this daemon publishes what its API receives (a subject without wildcards that `subject` matches)",
                    )
                }
            },
        };
        Ok(JetStreamSource {
            name,
            connection,
            stream,
            subject,
            durable,
            api_subject,
        })
    }

    /// A daemon that reads a stream takes every event from it: so do both daemons of a pair,
    /// and judge the same events.
    pub(super) fn jetstream_alone(
        &self,
        js: &JetStreamSource,
        config: &Config,
    ) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| {
            Err(ConfigError {
                message,
                key: Some(key.to_string()),
                line: None,
                column: None,
            })
        };
        if let Some(a) = config.adapters.first() {
            return err(
                "sources",
                format!(
                    "source {:?} ({}) beside nats-jetstream source {:?}: a daemon that reads a stream takes every event from it, so that both daemons of a pair judge the same events; run the adapter in `floorwatch relay`",
                    a.name,
                    a.kind.kind().as_str(),
                    js.name
                ),
            );
        }
        if config.source.mode == SourceMode::Connect {
            return err(
                "source.mode",
                "connect mode beside a nats-jetstream source: dial the phone system from `floorwatch relay`".into(),
            );
        }
        if config.source.clock == SourceClock::Receipt {
            return err(
                "source.clock",
                "\"receipt\" beside a nats-jetstream source would stamp each daemon's own receive time, and a pair would judge apart: set it on the relay".into(),
            );
        }
        if config.source.name == js.name && config.source.mode == SourceMode::Connect {
            return err(
                "sources",
                format!("source name {:?} is used twice", js.name),
            );
        }
        Ok(())
    }

    /// `[relay]`.
    pub(super) fn relay(&self, raw: Spanned<RawRelay>) -> Result<RelayConfig, ConfigError> {
        let span = raw.span();
        let raw = raw.into_inner();
        let connection = self.nats_connection(
            span.clone(),
            "relay",
            raw.url,
            raw.username,
            raw.password,
            raw.token,
            raw.ca,
        )?;
        let Some(stream) = raw.stream else {
            return self.err_key(span, "relay.stream", "required: the stream's name");
        };
        let stream = self.nats_name(stream, "stream name")?;
        let Some(subject) = raw.subject else {
            return self.err_key(
                span,
                "relay.subject",
                "required: the subject prefix, e.g. \"floor.site-a\" (each source publishes to floor.site-a.<source>)",
            );
        };
        let subject = self.nats_subject(subject, false, "floor.site-a")?;
        Ok(RelayConfig {
            connection,
            stream,
            subject,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_take_wildcards_only_as_whole_tokens() {
        assert!(valid_subject("floor.a.>", true));
        assert!(valid_subject("floor.*.x", true));
        assert!(!valid_subject("floor.a.>", false));
        assert!(!valid_subject("floor.>.x", true));
        assert!(!valid_subject("floor..a", true));
        assert!(!valid_subject("floor.a b", true));
        assert!(!valid_subject("floor.a*", true));
        assert!(!valid_subject("", true));
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text)
    }

    fn refused(text: &str) -> ConfigError {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        }
    }

    const SOURCE: &str = r#"
[[sources]]
kind = "nats-jetstream"
url = ["nats://10.0.0.1:4222", "tls://nats.example.net", "10.0.0.3:4223"]
stream = "FLOOR_A"
subject = "floor.a.>"
durable = "floorwatch-a"
"#;

    #[test]
    fn a_jetstream_source_reads_its_keys_and_defaults_the_api_subject() {
        let c = parse(SOURCE).unwrap_or_else(|e| panic!("{e}"));
        let js = c.jetstream.unwrap_or_else(|| panic!("no source"));
        assert_eq!(js.name, "nats-jetstream");
        assert_eq!(js.connection.servers.len(), 3);
        assert_eq!(js.connection.auth, NatsAuth::None);
        assert_eq!(js.stream, "FLOOR_A");
        assert_eq!(js.durable, "floorwatch-a");
        assert_eq!(js.api_subject, "floor.a.api");
        assert!(c.adapters.is_empty());
        let one = parse(
            r#"
[[sources]]
kind = "nats-jetstream"
name = "site-a"
url = "nats://127.0.0.1:4222"
stream = "S"
subject = "floor.a"
durable = "d"
username = "fw"
password = "pw"
ca = "/etc/ca.pem"
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let js = one.jetstream.unwrap_or_else(|| panic!("no source"));
        assert_eq!(js.name, "site-a");
        assert_eq!(
            js.api_subject, "floor.a",
            "a subject without wildcards is its own"
        );
        assert!(
            matches!(js.connection.auth, NatsAuth::UserPassword { ref user, .. } if user == "fw")
        );
        assert_eq!(
            js.connection.ca.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
    }

    #[test]
    fn bad_jetstream_keys_are_refused_naming_the_key() {
        let cases = [
            (SOURCE.replace("durable = \"floorwatch-a\"", ""), "sources[0].durable"),
            (SOURCE.replace("stream = \"FLOOR_A\"", "stream = \"FLOOR.A\""), ""),
            (SOURCE.replace("floor.a.>", "floor.>.a"), ""),
            (SOURCE.replace("floor.a.>", "floor.*.x"), "sources[0].api_subject"),
            (format!("{SOURCE}api_subject = \"other.api\"\n"), ""),
            (format!("{SOURCE}username = \"u\"\n"), "sources[0].password"),
            (format!("{SOURCE}token = \"t\"\nusername = \"u\"\npassword = \"p\"\n"), ""),
            (format!("{SOURCE}address = \"x:1\"\n"), "sources[0].address"),
            (SOURCE.replace("\"10.0.0.3:4223\"", "\"ws://10.0.0.3:4223\""), ""),
            (SOURCE.replace("\"10.0.0.3:4223\"", "\"nats://u:p@10.0.0.3\""), ""),
            (SOURCE.replace("url = [", "urls = ["), ""),
            (format!("{SOURCE}name = \"api\"\n"), ""),
            (format!("{SOURCE}{SOURCE}"), "sources[1]"),
            (
                format!("{SOURCE}[[sources]]\nkind = \"asterisk-ami\"\naddress = \"pbx:5038\"\nusername = \"u\"\nsecret = \"s\"\n"),
                "sources",
            ),
            (format!("[source]\nclock = \"receipt\"\n{SOURCE}"), "source.clock"),
            ("[source]\nstream = \"S\"\n".to_string(), "source.stream"),
            ("[[sources]]\nkind = \"freeswitch-esl\"\naddress = \"fs:8021\"\npassword = \"p\"\ndurable = \"d\"\n".to_string(), "sources[0].durable"),
            ("[source]\nurl = [\"ws://a/b\"]\n".to_string(), ""),
        ];
        for (text, key) in cases {
            let e = refused(&text);
            if !key.is_empty() {
                assert_eq!(e.key.as_deref(), Some(key), "{e}\n{text}");
            }
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn a_relay_table_names_its_stream_and_subject_prefix() {
        let c = parse(
            r#"
[relay]
url = ["nats://127.0.0.1:4222"]
stream = "FLOOR_A"
subject = "floor.a"
token = "s3cret"
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let r = c.relay.unwrap_or_else(|| panic!("no relay"));
        assert_eq!(r.subject, "floor.a");
        assert!(matches!(r.connection.auth, NatsAuth::Token(_)));
        assert!(
            !format!("{r:?}").contains("s3cret"),
            "secrets stay out of Debug"
        );
        let e = refused("[relay]\nurl = \"nats://h\"\nstream = \"S\"\nsubject = \"floor.a.>\"\n");
        assert!(e.message.contains("without wildcards"), "{e}");
        let e = refused("[relay]\nurl = \"nats://h\"\nstream = \"S\"\n");
        assert_eq!(e.key.as_deref(), Some("relay.subject"));
    }

    #[test]
    fn a_filter_matches_subjects_token_by_token() {
        assert!(subject_matches("floor.a.>", "floor.a.api"));
        assert!(subject_matches("floor.a.>", "floor.a.pbx.1"));
        assert!(!subject_matches("floor.a.>", "floor.a"));
        assert!(subject_matches("floor.*.api", "floor.b.api"));
        assert!(!subject_matches("floor.*.api", "floor.b.c.api"));
        assert!(subject_matches("floor.a", "floor.a"));
        assert!(!subject_matches("floor.a", "floor.b"));
    }
}
