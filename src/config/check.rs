//! Validation, in one place.
//!
//! Owns: every rule a config must meet: the raw structs of a file into a [`Config`] (every
//! error with its key, line and column), and [`Config::validate`] for a `Config` made or
//! changed in code. Must not: bind, dial or read anything but the `source.ca` file that
//! `validate` is asked to check.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::error::position;
use super::raw::*;
use super::*;
use crate::time::{parse_duration, Millis};

/// Longest team id, agent id, lead or source name, in bytes.
const MAX_ID_BYTES: usize = 128;
/// Largest accepted `source.max_frame`.
const MAX_FRAME_LIMIT: usize = 1 << 30;

impl Config {
    /// Parses and validates a config from TOML text. Every key is optional; a missing key
    /// keeps its value from [`Config::default`], except that a `reasons` table replaces the
    /// default reasons as a whole. What comes back is valid: [`Config::validate`] finds
    /// nothing in it but what only the start can see (the `source.ca` file).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::from_toml(text, &e))?;
        Check { text }.config(raw)
    }

    /// Checks a config made or changed in code (`demo --listen`, embedders, tests) as the
    /// file's validation would, without line and column, plus what the daemon needs at start
    /// that a file check cannot see: a `source.ca` file that holds certificates. The daemon
    /// calls it before it binds its port.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            message,
            key: Some(key.to_string()),
            line: None,
            column: None,
        };
        if let Some(message) = self.server.exposure() {
            return Err(err("server.listen", message));
        }
        if self.source.mode == SourceMode::Connect {
            match self.source.url.as_deref() {
                None | Some("") => {
                    return Err(err(
                        "source.url",
                        "source.url: required when source.mode = \"connect\"".into(),
                    ))
                }
                Some(u) if !(u.starts_with("ws://") || u.starts_with("wss://")) => {
                    return Err(err(
                        "source.url",
                        format!("source.url: want a ws:// or wss:// URL, not {u:?}"),
                    ))
                }
                Some(_) => {}
            }
            if let Some(ca) = self.source.ca.as_deref() {
                if let Err(e) = crate::tls::load_ca(ca) {
                    return Err(err("source.ca", e.to_string()));
                }
            }
        }
        let nats_cas = [
            ("sources.ca", self.jetstream.as_ref().map(|j| &j.connection)),
            ("relay.ca", self.relay.as_ref().map(|r| &r.connection)),
        ];
        for (key, connection) in nats_cas {
            if let Some(ca) = connection.and_then(|c| c.ca.as_deref()) {
                if let Err(e) = crate::tls::load_ca(ca) {
                    return Err(err(key, e.to_string()));
                }
            }
        }
        if self.source.max_frame == 0 {
            return Err(err(
                "source.max_frame",
                "source.max_frame: must be > 0".into(),
            ));
        }
        Ok(())
    }
}

pub(super) struct Check<'a> {
    pub(super) text: &'a str,
}

impl Check<'_> {
    pub(super) fn err<T>(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::at(self.text, span, None, message))
    }

    pub(super) fn err_key<T>(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::at(self.text, span, Some(key.into()), message))
    }

    fn positive(&self, d: Spanned<Duration>) -> Result<Millis, ConfigError> {
        let span = d.span();
        match d.into_inner().0 {
            0 => self.err(span, "must be longer than zero"),
            ms => Ok(ms),
        }
    }

    /// An `http://` or `https://` URL with a host.
    fn http_url(&self, url: Spanned<String>, example: &str) -> Result<String, ConfigError> {
        let u = url.get_ref();
        let ok = u.parse::<axum::http::Uri>().is_ok_and(|p| {
            matches!(p.scheme_str(), Some("http" | "https"))
                && p.host().is_some_and(|h| !h.is_empty())
        });
        if ok
            && u.parse::<axum::http::Uri>()
                .is_ok_and(|p| p.authority().is_some_and(|a| a.as_str().contains('@')))
        {
            return self.err(
                url.span(),
                "credentials in the URL are not supported (put an authenticating proxy in front)",
            );
        }
        if !ok {
            return self.err(
                url.span(),
                format!("not an http:// or https:// url: {u:?} (want e.g. {example:?})"),
            );
        }
        Ok(url.into_inner())
    }

    fn alerts(&self, raw: RawAlerts, target: &mut AlertsConfig) -> Result<(), ConfigError> {
        if let Some(am) = raw.alertmanager {
            for url in am.url.into_iter().chain(am.urls.into_iter().flatten()) {
                let url = self.http_url(url, "http://127.0.0.1:9093")?;
                if !target.alertmanager.contains(&url) {
                    target.alertmanager.push(url);
                }
            }
        }
        if let Some(w) = raw.webhook {
            let url = self.http_url(w.url, "https://hooks.example.com/floorwatch")?;
            let secret = match w.secret {
                Some(s) if s.get_ref().is_empty() => {
                    return self.err(
                        s.span(),
                        "must not be empty (leave it out for no signature)",
                    )
                }
                s => s.map(Spanned::into_inner),
            };
            target.webhook = Some(WebhookConfig { url, secret });
        }
        if let Some(d) = raw.escalate_after {
            target.escalate_after = self.positive(d)?;
        }
        if let Some(d) = raw.resolve_hold {
            target.resolve_hold = self.positive(d)?;
        }
        if let Some(d) = raw.resend_every {
            target.resend_every = self.positive(d)?;
        }
        if let Some(d) = raw.timeout {
            target.timeout = self.positive(d)?;
        }
        if let Some(d) = raw.retry_max {
            target.retry_max = self.positive(d)?;
        }
        if let Some(n) = raw.max_pending {
            match usize::try_from(*n.get_ref()) {
                Ok(v) if (1..=1_000_000).contains(&v) => target.max_pending = v,
                _ => return self.err(n.span(), "must be between 1 and 1000000"),
            }
        }
        if let Some(u) = raw.external_url {
            let u = self.http_url(u, "http://floor.example.com:8080")?;
            target.external_url = Some(u.trim_end_matches('/').to_string());
        }
        Ok(())
    }

    /// A non-empty id of at most [`MAX_ID_BYTES`] bytes.
    pub(super) fn id(
        &self,
        s: Spanned<String>,
        what: &str,
    ) -> Result<Spanned<String>, ConfigError> {
        let v = s.get_ref();
        if v.trim().is_empty() {
            return self.err(s.span(), format!("{what} must not be empty"));
        }
        if v.len() > MAX_ID_BYTES {
            return self.err(
                s.span(),
                format!("{what} is {} bytes long (at most {MAX_ID_BYTES})", v.len()),
            );
        }
        Ok(s)
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(users) = raw.users {
            config.server.users = self.users(users)?;
        }
        if let Some(server) = raw.server {
            self.server(server, &mut config.server)?;
        }
        if let Some(mut source) = raw.source {
            if let Some(kind) = source
                .kind
                .as_ref()
                .filter(|k| *k.get_ref() == SourceKind::NatsJetstream)
            {
                return self.err_key(
                    kind.span(),
                    "source.kind",
                    "a nats-jetstream source is configured in a [[sources]] table",
                );
            }
            if let Some((key, span)) = source.first_nats_key() {
                return self.err_key(
                    span,
                    format!("source.{key}"),
                    "only for a [[sources]] table of kind = \"nats-jetstream\"",
                );
            }
            if let Some(adapter) = source.take_adapter() {
                if let Some(mode) = &source.mode {
                    if *mode.get_ref() == SourceMode::Connect {
                        return self.err_key(
                            mode.span(),
                            "source.mode",
                            format!(
                                "connect mode is for the floorwatch protocol; kind = {:?} dials its own platform",
                                adapter.kind.get_ref().as_str()
                            ),
                        );
                    }
                }
                if let Some((key, span)) = source.first_protocol_key() {
                    return self.err_key(
                        span,
                        format!("source.{key}"),
                        "only for kind = \"floorwatch\"",
                    );
                }
                config.source.kind = *adapter.kind.get_ref();
                config.adapters.push(self.adapter(adapter, "source")?);
            } else if let Some((key, span)) = source.first_adapter_key() {
                return self.err_key(
                    span,
                    format!("source.{key}"),
                    "only for a phone-system adapter (set source.kind, e.g. \"asterisk-ami\")",
                );
            }
            self.source(source, &mut config.source)?;
        }
        if let Some(sources) = raw.sources {
            for (i, table) in sources.into_iter().enumerate() {
                let key = format!("sources[{i}]");
                let span = table.span();
                let mut table = table.into_inner();
                if table
                    .kind
                    .as_ref()
                    .is_some_and(|k| *k.get_ref() == SourceKind::NatsJetstream)
                {
                    if config.jetstream.is_some() {
                        return self.err_key(
                            span,
                            key,
                            "a daemon reads one nats-jetstream source (one stream, one consumer)",
                        );
                    }
                    config.jetstream = Some(self.jetstream(table, &key, span)?);
                    continue;
                }
                if let Some((k, span)) = table.first_nats_key() {
                    return self.err_key(
                        span,
                        format!("{key}.{k}"),
                        "only for kind = \"nats-jetstream\"",
                    );
                }
                if let Some((k, span)) = table.first_protocol_key() {
                    return self.err_key(
                        span,
                        format!("{key}.{k}"),
                        "the floorwatch protocol is configured in [source] only",
                    );
                }
                let protocol_only = [
                    ("clock", table.clock.is_some()),
                    ("delay", table.delay.is_some()),
                    ("max_lag", table.max_lag.is_some()),
                    ("idle", table.idle.is_some()),
                    ("ping_every", table.ping_every.is_some()),
                    ("ping_timeout", table.ping_timeout.is_some()),
                    ("ca", table.ca.is_some()),
                ];
                if let Some((k, _)) = protocol_only.iter().find(|(_, set)| *set) {
                    return self.err_key(
                        span,
                        format!("{key}.{k}"),
                        "applies to every source: set it in [source]",
                    );
                }
                let max_future = match table.max_future.take() {
                    Some(d) => Some(self.positive(d)?),
                    None => None,
                };
                match table.take_adapter() {
                    Some(adapter) => {
                        let mut a = self.adapter(adapter, &key)?;
                        a.max_future = max_future;
                        config.adapters.push(a);
                    }
                    None => {
                        return self.err_key(
                            table.kind.as_ref().map(|k| k.span()).unwrap_or(span),
                            format!("{key}.kind"),
                            "want \"asterisk-ami\", \"asterisk-queue-log\", \"freeswitch-esl\" or \"nats-jetstream\" (the floorwatch protocol is configured in [source])",
                        )
                    }
                }
            }
        }
        if let Some(js) = &config.jetstream {
            self.jetstream_alone(js, &config)?;
        }
        if let Some(relay) = raw.relay {
            config.relay = Some(self.relay(relay)?);
        }
        let mut names = std::collections::HashSet::new();
        for a in &config.adapters {
            if a.name == API_SOURCE
                || (config.source.kind == SourceKind::Floorwatch
                    && config.source.mode == SourceMode::Connect
                    && a.name == config.source.name)
                || !names.insert(a.name.as_str())
            {
                return Err(ConfigError {
                    message: format!(
                        "source name {:?} is used twice (or is reserved): give each source its own `name`",
                        a.name
                    ),
                    key: Some("sources".into()),
                    line: None,
                    column: None,
                });
            }
        }
        if let Some(store) = raw.store {
            if let Some(dir) = store.dir {
                if dir.get_ref().trim().is_empty() {
                    return self.err(dir.span(), "must not be empty");
                }
                config.store.dir = PathBuf::from(dir.into_inner());
            }
            if let Some(d) = store.checkpoint_every {
                config.store.checkpoint_every = self.positive(d)?;
            }
            if let Some(d) = store.retention {
                let text = d.get_ref().trim();
                let ms = match text.strip_suffix('d').map(str::parse::<u32>) {
                    Some(Ok(days)) => Some(i64::from(days) * 86_400_000),
                    _ => parse_duration(text).ok(),
                };
                match ms {
                    Some(ms) if ms > 0 => config.store.retention = ms,
                    _ => {
                        return self.err_key(
                            d.span(),
                            "store.retention",
                            format!("not a retention: {text:?} (want e.g. \"400d\" or \"720h\")"),
                        )
                    }
                }
            }
        }
        if let Some(rules) = raw.rules {
            self.rules(rules, &mut config.rules)?;
        }
        if let Some(reasons) = raw.reasons {
            config.rules.reasons = self.reasons(reasons)?;
        }
        if let Some(items) = raw.discipline {
            config.rules.discipline = self.discipline(items)?;
        }
        if let Some(codes) = raw.dispositions {
            config.rules.dispositions = self.dispositions(codes)?;
        }
        if let Some(sl) = raw.service_level {
            let target = &mut config.rules.service_level;
            if let Some(t) = sl.threshold {
                target.threshold = self.positive(t)?;
            }
            if let Some(d) = sl.short_abandon {
                target.short_abandon = d.0;
            }
        }
        if let Some(appraisal) = raw.appraisal {
            self.appraisal(appraisal, &mut config.rules)?;
        }
        if let Some(teams) = raw.teams {
            config.teams = self.teams(teams, &mut config.rules.team_of)?;
            config.rules.sales_target = config
                .teams
                .iter()
                .filter_map(|t| t.sales_target.map(|n| (t.id.clone(), n)))
                .collect();
        }
        if let Some(alerts) = raw.alerts {
            self.alerts(alerts, &mut config.alerts)?;
        }
        if let Some(m) = raw.metrics {
            self.metrics(m, &mut config.metrics)?;
        }
        if let Some(limits) = raw.limits {
            self.limits(limits, &mut config)?;
        }
        if let Some(language) = raw.ui.and_then(|u| u.language) {
            match language.get_ref().as_str() {
                "zh-CN" | "en" => config.ui.language = language.into_inner(),
                other => {
                    return self.err(
                        language.span(),
                        format!("unknown language {other:?} (want \"zh-CN\" or \"en\")"),
                    )
                }
            }
        }
        Ok(config)
    }

    /// A count between 1 and `max`.
    fn count(&self, v: Spanned<i64>, max: i64) -> Result<usize, ConfigError> {
        let span = v.span();
        match v.into_inner() {
            n if n < 1 => self.err(span, "must be at least 1"),
            n if n > max => self.err(span, format!("must be at most {max}")),
            n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }

    fn limits(&self, raw: RawLimits, config: &mut Config) -> Result<(), ConfigError> {
        const BIG: i64 = 1 << 32;
        let engine = &mut config.rules.limits;
        let shell = &mut config.limits;
        if let Some(v) = raw.max_batch {
            shell.max_batch = self.count(v, BIG)?;
        }
        if let Some(v) = raw.max_agents {
            engine.max_agents = self.count(v, BIG)?;
        }
        if let Some(v) = raw.max_calls {
            engine.max_calls = self.count(v, BIG)?;
        }
        if let Some(v) = raw.max_queues {
            engine.max_queues = self.count(v, BIG)?;
        }
        if let Some(v) = raw.max_shifts {
            engine.max_shifts = self.count(v, BIG)?;
        }
        if let Some(v) = raw.max_sources {
            engine.max_sources = self.count(v, BIG)?;
        }
        if let Some(v) = raw.max_ingest_connections {
            shell.max_ingest_connections = self.count(v, 1 << 20)?;
        }
        if let Some(v) = raw.max_floor_connections {
            shell.max_floor_connections = self.count(v, 1 << 20)?;
        }
        if let Some(v) = raw.max_events_per_second {
            let n = self.count(v, i64::from(u32::MAX))?;
            shell.max_events_per_second = u32::try_from(n).unwrap_or(u32::MAX);
        }
        Ok(())
    }

    fn server(&self, raw: RawServer, server: &mut ServerConfig) -> Result<(), ConfigError> {
        let listen_span = raw.listen.as_ref().map(|l| l.span());
        if let Some(listen) = raw.listen {
            server.listen = match listen.get_ref().trim().parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => {
                    return self.err(
                        listen.span(),
                        format!(
                            "not a socket address: {:?} (want e.g. \"127.0.0.1:8080\" or \"[::]:8080\")",
                            listen.get_ref()
                        ),
                    )
                }
            };
        }
        if let Some(grace) = raw.shutdown_grace {
            let span = grace.span();
            match grace.into_inner().0 {
                g if g <= 0 => return self.err(span, "must be more than 0s"),
                g => server.shutdown_grace = g,
            }
        }
        if let Some(tokens) = raw.tokens {
            for (list, target) in [
                (tokens.ingest, &mut server.tokens.ingest),
                (tokens.viewer, &mut server.tokens.viewer),
                (tokens.lead, &mut server.tokens.lead),
            ] {
                for token in list.into_iter().flatten() {
                    let t = token.get_ref();
                    if t.is_empty() {
                        return self.err(token.span(), "a token must not be empty");
                    }
                    // It travels in an `Authorization: Bearer` header.
                    if !t.chars().all(|c| c.is_ascii_graphic()) {
                        return self.err(
                            token.span(),
                            "a token must be printable ascii without spaces",
                        );
                    }
                    target.push(token.into_inner());
                }
            }
        }
        if let Some(tls) = raw.tls {
            let span = tls.span();
            let tls = tls.into_inner();
            let path = |v: Option<Spanned<String>>, key: &str| match v {
                Some(p) if !p.get_ref().trim().is_empty() => Ok(PathBuf::from(p.into_inner())),
                Some(p) => self.err(p.span(), "must not be empty"),
                None => self.err_key(
                    span.clone(),
                    format!("server.tls.{key}"),
                    "required in [server.tls] (a PEM file)",
                ),
            };
            server.tls = Some(TlsFiles {
                cert: path(tls.cert, "cert")?,
                key: path(tls.key, "key")?,
            });
        }
        if let Some(proxy) = raw.auth_proxy {
            server.auth_proxy = Some(self.auth_proxy(proxy)?);
        }
        if let (Some(span), Some(message)) = (listen_span, server.exposure()) {
            return self.err_key(span, "server.listen", message);
        }
        Ok(())
    }

    /// `[[users]]`: names and token digests unique, a lead with teams, an agent user with
    /// their agent id.
    fn users(&self, raw: Vec<Spanned<RawUser>>) -> Result<Vec<User>, ConfigError> {
        let mut users: Vec<User> = Vec::new();
        for (i, u) in raw.into_iter().enumerate() {
            let span = u.span();
            let u = u.into_inner();
            let key = |k: &str| format!("users[{i}].{k}");
            let Some(name) = u.name else {
                return self.err_key(span, key("name"), "a user needs a name (what `by` records)");
            };
            let name = self.id(name, "a user name")?;
            if users.iter().any(|x| x.name == *name.get_ref()) {
                return self.err(
                    name.span(),
                    format!("user {:?} is listed twice", name.get_ref()),
                );
            }
            let Some(role_s) = u.role else {
                return self.err_key(
                    span,
                    key("role"),
                    "a user needs a role: admin, qa, lead, agent, viewer or ingest",
                );
            };
            let Some(role) = Role::parse(role_s.get_ref()) else {
                return self.err(
                    role_s.span(),
                    format!(
                        "unknown role {:?} (want admin, qa, lead, agent, viewer or ingest)",
                        role_s.get_ref()
                    ),
                );
            };
            let mut teams = Vec::new();
            for t in u.teams.into_iter().flatten() {
                teams.push(self.id(t, "a team id")?.into_inner());
            }
            if role == Role::Lead && teams.is_empty() {
                return self.err_key(
                    role_s.span(),
                    key("teams"),
                    "a lead needs `teams`: the teams they may act on",
                );
            }
            let agent = u
                .agent
                .map(|a| self.id(a, "an agent id"))
                .transpose()?
                .map(Spanned::into_inner);
            if role == Role::Agent && agent.is_none() {
                return self.err_key(
                    role_s.span(),
                    key("agent"),
                    "an agent user needs `agent`: their agent id",
                );
            }
            let token_sha256 = match u.token_sha256 {
                None => None,
                Some(h) => {
                    let text = h.get_ref().trim().to_ascii_lowercase();
                    let bytes = (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
                        .then(|| {
                            (0..32)
                                .map(|k| u8::from_str_radix(&text[2 * k..2 * k + 2], 16).ok())
                                .collect::<Option<Vec<u8>>>()
                        })
                        .flatten();
                    let Some(bytes) = bytes else {
                        return self.err(
                            h.span(),
                            "want the SHA-256 of the token as 64 hex digits (e.g. `printf %s TOKEN | sha256sum`)",
                        );
                    };
                    let mut d = [0u8; 32];
                    d.copy_from_slice(&bytes);
                    if users.iter().any(|x| x.token_sha256 == Some(d)) {
                        return self.err(h.span(), "two users have the same token");
                    }
                    Some(d)
                }
            };
            users.push(User {
                name: name.into_inner(),
                role,
                teams,
                agent,
                token_sha256,
            });
        }
        Ok(users)
    }

    fn auth_proxy(&self, raw: Spanned<RawAuthProxy>) -> Result<AuthProxy, ConfigError> {
        let span = raw.span();
        let raw = raw.into_inner();
        let header = match raw.header {
            Some(h) => {
                let ok = !h.get_ref().is_empty()
                    && h.get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !ok {
                    return self.err(h.span(), "not a valid http header name");
                }
                h.into_inner()
            }
            None => "X-Forwarded-User".to_string(),
        };
        let mut trusted = Vec::new();
        for t in raw.trusted.into_iter().flatten() {
            let text = t.get_ref().trim();
            let net = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match net {
                Ok(n) => trusted.push(n),
                Err(_) => {
                    return self.err(
                        t.span(),
                        format!("not an address or network: {text:?} (want e.g. \"127.0.0.1/32\")"),
                    )
                }
            }
        }
        if trusted.is_empty() {
            return self.err_key(
                span,
                "server.auth_proxy.trusted",
                "required: the proxy's addresses (the header is believed only from them)",
            );
        }
        Ok(AuthProxy { header, trusted })
    }

    fn metrics(&self, raw: RawMetrics, metrics: &mut MetricsConfig) -> Result<(), ConfigError> {
        let Some(on) = raw.pseudonymize_agents else {
            return Ok(());
        };
        if !*on.get_ref() {
            return Ok(());
        }
        let Some(key) = raw.pseudonym_key else {
            return self.err(
                on.span(),
                "needs metrics.pseudonym_key (a secret of at least 16 characters)",
            );
        };
        // A short key can be found by trying every agent id against the published hashes.
        if key.get_ref().chars().count() < 16 {
            return self.err(key.span(), "want a secret of at least 16 characters");
        }
        metrics.pseudonym_key = Some(Secret(key.into_inner()));
        Ok(())
    }

    fn source(&self, raw: RawSource, source: &mut SourceConfig) -> Result<(), ConfigError> {
        let mode_span = raw.mode.as_ref().map(|m| m.span());
        if let Some(mode) = raw.mode {
            source.mode = mode.into_inner();
        }
        if let Some(url) = raw.url {
            let span = url.span();
            let url = match url.into_inner() {
                RawUrl::One(u) => Spanned::new(span, u),
                RawUrl::Many(_) => {
                    return self.err(span, "want one ws:// or wss:// url, not a list")
                }
            };
            let u = url.get_ref();
            let rest = u.strip_prefix("ws://").or_else(|| u.strip_prefix("wss://"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                return self.err(
                    url.span(),
                    format!("not a ws:// or wss:// url: {u:?} (want e.g. \"wss://pbx.example.net/events\")"),
                );
            }
            source.url = Some(url.into_inner());
        }
        if source.mode == SourceMode::Connect && source.url.is_none() {
            return self.err_key(
                mode_span.unwrap_or(0..0),
                "source.url",
                "connect mode needs a ws:// or wss:// url to dial",
            );
        }
        if let Some(headers) = raw.headers {
            for (name, value) in headers {
                let token_char =
                    |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                if name.get_ref().is_empty() || !name.get_ref().chars().all(token_char) {
                    return self.err(
                        name.span(),
                        format!("not a valid http header name: {:?}", name.get_ref()),
                    );
                }
                if value.get_ref().chars().any(|c| c.is_control() && c != '\t') {
                    return self.err(
                        value.span(),
                        "a header value must not contain line breaks or control characters",
                    );
                }
                source.headers.push((name.into_inner(), value.into_inner()));
            }
        }
        if let Some(name) = raw.name {
            source.name = self.id(name, "the source name")?.into_inner();
        }
        if let Some(max_frame) = raw.max_frame {
            let span = max_frame.span();
            match max_frame.into_inner().0 {
                0 => return self.err(span, "must be at least 1 byte"),
                n if n > MAX_FRAME_LIMIT => return self.err(span, "must be at most 1GiB"),
                n => source.max_frame = n,
            }
        }
        if let Some(clock) = raw.clock {
            source.clock = clock;
        }
        if let Some(d) = raw.delay {
            source.delay = d.0;
        }
        if let Some(d) = raw.max_lag {
            source.max_lag = d.0;
        }
        if let Some(d) = raw.idle {
            source.idle = d.0;
        }
        if let Some(d) = raw.max_future {
            source.max_future = self.positive(d)?;
        }
        for (name, d) in raw.max_future_of.unwrap_or_default() {
            let name = self.id(name, "a source name of source.max_future_of")?;
            let ms = self.positive(d)?;
            source.max_future_of.insert(name.into_inner(), ms);
        }
        let every_span = raw.ping_every.as_ref().map(|d| d.span());
        if let Some(d) = raw.ping_every {
            let span = d.span();
            match d.into_inner().0 {
                ms if ms <= 0 => return self.err(span, "must be more than 0s"),
                ms => source.ping_every = ms,
            }
        }
        let timeout_span = raw.ping_timeout.as_ref().map(|d| d.span());
        if let Some(d) = raw.ping_timeout {
            source.ping_timeout = d.into_inner().0;
        }
        if source.ping_timeout <= source.ping_every {
            let (span, key) = match (timeout_span, every_span) {
                (Some(s), _) => (s, "source.ping_timeout"),
                (None, Some(s)) => (s, "source.ping_every"),
                (None, None) => (0..0, "source.ping_timeout"),
            };
            return self.err_key(
                span,
                key,
                format!(
                    "ping_timeout ({}ms) must be longer than ping_every ({}ms), or a live source would be dropped",
                    source.ping_timeout, source.ping_every
                ),
            );
        }
        if let Some(ca) = raw.ca {
            if ca.get_ref().trim().is_empty() {
                return self.err(
                    ca.span(),
                    "must be the path of a PEM file of CA certificates",
                );
            }
            source.ca = Some(PathBuf::from(ca.into_inner()));
        }
        Ok(())
    }

    /// A required, non-empty string key of an adapter table.
    fn required(
        &self,
        value: Option<Spanned<String>>,
        kind_span: Range<usize>,
        key: &str,
        what: &str,
    ) -> Result<String, ConfigError> {
        match value {
            Some(v) if !v.get_ref().trim().is_empty() => Ok(v.into_inner()),
            Some(v) => self.err(v.span(), format!("{what} must not be empty")),
            None => self.err_key(kind_span, key, format!("required: {what}")),
        }
    }

    /// `host:port`, with `default_port` added when the port is left out.
    fn address(
        &self,
        value: Option<Spanned<String>>,
        kind_span: Range<usize>,
        key: &str,
        default_port: u16,
    ) -> Result<String, ConfigError> {
        let example = format!("e.g. \"pbx.example.net:{default_port}\"");
        let Some(v) = value else {
            return self.err_key(
                kind_span,
                key,
                format!("required: the address to dial ({example})"),
            );
        };
        let text = v.get_ref().trim();
        let (host, port) = match text.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => (h, Some(p)),
            _ => (text, None),
        };
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return self.err(v.span(), format!("not a host:port: {text:?} ({example})")),
            },
        };
        if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
            return self.err(v.span(), format!("not a host:port: {text:?} ({example})"));
        }
        Ok(format!("{host}:{port}"))
    }

    fn reason(&self, v: Spanned<String>) -> Result<String, ConfigError> {
        Ok(self.id(v, "a reason")?.into_inner())
    }

    /// `members`: interface → member name. A key must look like an interface
    /// (`Tech/resource`); with `agent_id = "interface"` a name may name one interface only
    /// (it is mapped back).
    fn members(
        &self,
        raw: BTreeMap<Spanned<String>, Spanned<String>>,
        agent_id: AmiAgentId,
    ) -> Result<MemberNames, ConfigError> {
        let mut members = MemberNames::default();
        for (interface, name) in raw {
            let interface = self.id(interface, "an interface")?;
            let i = interface.get_ref();
            let is_interface = i
                .split_once('/')
                .is_some_and(|(tech, resource)| !tech.is_empty() && !resource.is_empty());
            if !is_interface {
                return self.err(
                    interface.span(),
                    format!(
                        "{i:?} is not an interface (Tech/resource, e.g. \"PJSIP/801\" = \"Alice\")"
                    ),
                );
            }
            let name = self.id(name, "a member name")?;
            if agent_id == AmiAgentId::Interface {
                if let Some(other) = members.interface_of(name.get_ref()) {
                    return self.err(
                        name.span(),
                        format!(
                            "{:?} is the name of {other:?} already: with agent_id = \"interface\" a name must name one interface",
                            name.get_ref()
                        ),
                    );
                }
            }
            members.insert(i, name.get_ref());
        }
        Ok(members)
    }

    fn adapter(&self, mut raw: RawAdapter, table: &str) -> Result<AdapterConfig, ConfigError> {
        let kind = *raw.kind.get_ref();
        let kind_span = raw.kind.span();
        let name = match raw.name.take() {
            Some(n) => self.id(n, "the source name")?.into_inner(),
            None => kind.as_str().to_string(),
        };
        let key = |k: &str| format!("{table}.{k}");
        let not_for = |k: &str, span: Option<Range<usize>>| -> Result<(), ConfigError> {
            match span {
                Some(span) => self.err_key(
                    span,
                    key(k),
                    format!("not a key of kind = {:?}", kind.as_str()),
                ),
                None => Ok(()),
            }
        };
        let ami_settings = |raw: &mut RawAdapter| -> Result<AmiSettings, ConfigError> {
            let mut s = AmiSettings::default();
            if let Some(a) = raw.agent_id.take() {
                s.agent_id = match a.get_ref().as_str() {
                    "membername" => AmiAgentId::MemberName,
                    "interface" => AmiAgentId::Interface,
                    other => {
                        return self.err(
                            a.span(),
                            format!("want \"membername\" or \"interface\", not {other:?}"),
                        )
                    }
                };
            }
            if let Some(members) = raw.members.take() {
                s.members = self.members(members, s.agent_id)?;
            }
            if let Some(list) = raw.acw_reasons.take() {
                s.acw_reasons = list
                    .into_iter()
                    .map(|r| self.reason(r))
                    .collect::<Result<_, _>>()?;
            }
            if let Some(r) = raw.auto_pause_reason.take() {
                s.auto_pause_reason = self.reason(r)?;
            }
            Ok(s)
        };
        let adapter = match kind {
            SourceKind::Floorwatch | SourceKind::NatsJetstream => {
                return self.err_key(kind_span, key("kind"), "not an adapter kind")
            }
            SourceKind::AsteriskAmi => {
                not_for("password", raw.password.as_ref().map(|v| v.span()))?;
                not_for("path", raw.path.as_ref().map(|v| v.span()))?;
                not_for("break_reason", raw.break_reason.as_ref().map(|v| v.span()))?;
                not_for(
                    "reorder_window",
                    raw.reorder_window.as_ref().map(|v| v.span()),
                )?;
                not_for("max_frame", raw.max_frame.as_ref().map(|v| v.span()))?;
                let settings = ami_settings(&mut raw)?;
                AdapterKind::AsteriskAmi(AmiSource {
                    address: self.address(raw.address, kind_span.clone(), &key("address"), 5038)?,
                    username: self.required(
                        raw.username,
                        kind_span.clone(),
                        &key("username"),
                        "the manager.conf user",
                    )?,
                    secret: Secret(self.required(
                        raw.secret,
                        kind_span,
                        &key("secret"),
                        "the manager.conf secret",
                    )?),
                    settings,
                    keepalive: AmiSource::KEEPALIVE,
                })
            }
            SourceKind::AsteriskQueueLog => {
                not_for("address", raw.address.as_ref().map(|v| v.span()))?;
                not_for("username", raw.username.as_ref().map(|v| v.span()))?;
                not_for("secret", raw.secret.as_ref().map(|v| v.span()))?;
                not_for("password", raw.password.as_ref().map(|v| v.span()))?;
                not_for("break_reason", raw.break_reason.as_ref().map(|v| v.span()))?;
                not_for("max_frame", raw.max_frame.as_ref().map(|v| v.span()))?;
                let settings = ami_settings(&mut raw)?;
                let reorder_window = match raw.reorder_window {
                    Some(d) => self.positive(d)?,
                    None => 60_000,
                };
                AdapterKind::AsteriskQueueLog(QueueLogSource {
                    path: PathBuf::from(self.required(
                        raw.path,
                        kind_span,
                        &key("path"),
                        "the queue_log file, e.g. \"/var/log/asterisk/queue_log\"",
                    )?),
                    reorder_window,
                    settings,
                })
            }
            SourceKind::FreeswitchEsl => {
                not_for("username", raw.username.as_ref().map(|v| v.span()))?;
                not_for("secret", raw.secret.as_ref().map(|v| v.span()))?;
                not_for("path", raw.path.as_ref().map(|v| v.span()))?;
                not_for(
                    "members",
                    raw.members
                        .as_ref()
                        .and_then(|m| m.keys().next().map(|k| k.span())),
                )?;
                not_for(
                    "acw_reasons",
                    raw.acw_reasons
                        .as_ref()
                        .and_then(|v| v.first().map(|x| x.span())),
                )?;
                not_for(
                    "auto_pause_reason",
                    raw.auto_pause_reason.as_ref().map(|v| v.span()),
                )?;
                not_for(
                    "reorder_window",
                    raw.reorder_window.as_ref().map(|v| v.span()),
                )?;
                let mut settings = EslSettings::default();
                if let Some(a) = raw.agent_id {
                    settings.agent_id = match a.get_ref().as_str() {
                        "name" => EslAgentId::Name,
                        "before-at" => EslAgentId::BeforeAt,
                        other => {
                            return self.err(
                                a.span(),
                                format!("want \"name\" or \"before-at\", not {other:?}"),
                            )
                        }
                    };
                }
                if let Some(r) = raw.break_reason {
                    settings.break_reason = self.reason(r)?;
                }
                if let Some(m) = raw.max_frame {
                    let span = m.span();
                    settings.max_frame = match m.into_inner().0 {
                        0 => return self.err(span, "must be at least 1 byte"),
                        n if n > MAX_FRAME_LIMIT => return self.err(span, "must be at most 1GiB"),
                        n => n,
                    };
                }
                AdapterKind::FreeswitchEsl(EslSource {
                    address: self.address(raw.address, kind_span.clone(), &key("address"), 8021)?,
                    password: Secret(self.required(
                        raw.password,
                        kind_span,
                        &key("password"),
                        "the event socket password (event_socket.conf.xml)",
                    )?),
                    settings,
                })
            }
        };
        Ok(AdapterConfig {
            name,
            kind: adapter,
            max_future: None,
        })
    }

    fn rules(&self, raw: RawRules, rules: &mut RulesConfig) -> Result<(), ConfigError> {
        if let Some(r) = raw.ring_answer {
            let target = &mut rules.ring_answer;
            if let Some(rings) = r.rings {
                let n = self.count(rings, i64::from(u32::MAX))?;
                target.rings = u32::try_from(n).unwrap_or(u32::MAX);
            }
            if let Some(cycle) = r.ring_cycle {
                target.ring_cycle = self.positive(cycle)?;
            }
            if let Some(p) = r.points {
                target.points = p;
            }
        }
        if let Some(r) = raw.break_overrun {
            let target = &mut rules.break_overrun;
            if let Some(p) = r.points {
                target.points = p;
            }
            if let Some(d) = r.daily_allowance {
                target.daily_allowance = d.0;
            }
        }
        if let Some(r) = raw.attendance {
            let target = &mut rules.attendance;
            if let Some(d) = r.login_grace {
                target.login_grace = d.0;
            }
            if let Some(d) = r.logout_grace {
                target.logout_grace = d.0;
            }
            if let Some(d) = r.handover_window {
                target.handover_window = d.0;
            }
            if let Some(p) = r.points {
                let points = &mut target.points;
                if let Some(n) = p.late_login {
                    points.late_login = n;
                }
                if let Some(n) = p.left_before_relief {
                    points.left_before_relief = n;
                }
                if let Some(n) = p.not_logged_out {
                    points.not_logged_out = n;
                }
            }
        }
        if let Some(r) = raw.unauthorized_pause {
            let target = &mut rules.unauthorized_pause;
            if let Some(p) = r.points {
                target.points = p;
            }
            if let Some(d) = r.grace {
                target.grace = d.0;
            }
            if let Some(d) = r.acw_max {
                target.acw_max = self.positive(d)?;
            }
            if let Some(d) = r.acw_link {
                target.acw_link = d.0;
            }
        }
        Ok(())
    }

    fn reasons(
        &self,
        raw: BTreeMap<Spanned<String>, RawReason>,
    ) -> Result<BTreeMap<String, ReasonRule>, ConfigError> {
        let mut reasons = BTreeMap::new();
        for (name, r) in raw {
            if name.get_ref().is_empty() {
                return self.err(
                    name.span(),
                    "the empty reason cannot be configured (a pause without reason is always no_reason)",
                );
            }
            let max = match r.max {
                Some(d) => Some(self.positive(d)?),
                None => None,
            };
            reasons.insert(
                name.into_inner(),
                ReasonRule {
                    max,
                    allowance: r.allowance.unwrap_or(false),
                    approval: r.approval.unwrap_or(false),
                },
            );
        }
        Ok(reasons)
    }

    /// A `[discipline.*]` catalog; it replaces the default catalog as a whole.
    fn discipline(
        &self,
        raw: BTreeMap<Spanned<String>, RawDisciplineItem>,
    ) -> Result<BTreeMap<String, DisciplineItem>, ConfigError> {
        const MAX_POINTS: i64 = 1_000;
        let mut items = BTreeMap::new();
        for (key, item) in raw {
            let key_span = key.span();
            let key = self.id(key, "a discipline item key")?.into_inner();
            let name = match item.name {
                Some(n) if n.get_ref().trim().is_empty() => {
                    return self.err(n.span(), "must not be empty (leave it out to use the key)")
                }
                Some(n) => n.into_inner(),
                None => key.clone(),
            };
            let Some(points) = item.points else {
                return self.err_key(
                    key_span,
                    format!("discipline.{key}.points"),
                    "required: the item's points, e.g. 2 or [1, 5] for a range the lead chooses from",
                );
            };
            let span = points.span();
            let want = format!(
                "want a whole number of points from 0 to {MAX_POINTS}, or [min, max] with min < max"
            );
            let in_range = |n: i64| (0..=MAX_POINTS).contains(&n);
            let points = match points.into_inner() {
                RawItemPoints::Fixed(n) if in_range(n) => ItemPoints::Fixed(n as u32),
                RawItemPoints::Range(v) => match v.as_slice() {
                    [lo, hi] if in_range(*lo) && in_range(*hi) && lo < hi => {
                        ItemPoints::Range(*lo as u32, *hi as u32)
                    }
                    _ => return self.err(span, want),
                },
                RawItemPoints::Fixed(_) => return self.err(span, want),
            };
            items.insert(key, DisciplineItem { name, points });
        }
        Ok(items)
    }

    /// A `[dispositions.*]` table; it replaces the default codes as a whole.
    fn dispositions(
        &self,
        raw: BTreeMap<Spanned<String>, RawDisposition>,
    ) -> Result<BTreeMap<String, Disposition>, ConfigError> {
        let mut codes = BTreeMap::new();
        for (code, d) in raw {
            let code = self.id(code, "a disposition code")?.into_inner();
            let name = match d.name {
                Some(n) if n.get_ref().trim().is_empty() => {
                    return self.err(n.span(), "must not be empty (leave it out to use the code)")
                }
                Some(n) => n.into_inner(),
                None => code.clone(),
            };
            codes.insert(
                code,
                Disposition {
                    name,
                    sale: d.sale.unwrap_or(false),
                },
            );
        }
        Ok(codes)
    }

    fn appraisal(&self, raw: RawAppraisal, rules: &mut RulesConfig) -> Result<(), ConfigError> {
        if let Some(tz) = raw.timezone {
            match jiff::tz::TimeZone::get(tz.get_ref()) {
                Ok(zone) => {
                    rules.timezone = zone;
                    rules.timezone_name = tz.into_inner();
                }
                Err(_) => {
                    return self.err(
                        tz.span(),
                        format!(
                            "unknown time zone {:?} (want an IANA name such as \"Asia/Shanghai\" or \"UTC\")",
                            tz.get_ref()
                        ),
                    )
                }
            }
        }
        if let Some(m) = raw.money_per_point {
            let v = *m.get_ref();
            if !v.is_finite() || v < 0.0 {
                return self.err(m.span(), format!("must be a number ≥ 0, not {v}"));
            }
            rules.money_per_point = v;
        }
        if let Some(c) = raw.currency {
            if c.get_ref().trim().is_empty() {
                return self.err(c.span(), "must not be empty");
            }
            rules.currency = c.into_inner();
        }
        Ok(())
    }

    fn teams(
        &self,
        raw: Vec<Spanned<RawTeam>>,
        team_of: &mut HashMap<String, String>,
    ) -> Result<Vec<TeamConfig>, ConfigError> {
        let mut teams: Vec<TeamConfig> = Vec::new();
        // id → line of its first mention, for "first at line N" hints.
        let mut team_line: HashMap<String, usize> = HashMap::new();
        let mut member_line: HashMap<String, usize> = HashMap::new();
        for (i, team) in raw.into_iter().enumerate() {
            let span = team.span();
            let team = team.into_inner();
            let Some(id) = team.id else {
                return self.err_key(span, format!("teams[{i}].id"), "a team needs an id");
            };
            let id = self.id(id, "a team id")?;
            if let Some(first) = team_line.get(id.get_ref()) {
                return self.err(
                    id.span(),
                    format!(
                        "duplicate team id {:?} (first at line {first})",
                        id.get_ref()
                    ),
                );
            }
            team_line.insert(id.get_ref().clone(), position(self.text, id.span().start).0);
            let lead = team.lead.map(|l| self.id(l, "a lead")).transpose()?;
            let supervisor = team
                .supervisor
                .map(|s| self.id(s, "a supervisor"))
                .transpose()?;
            let mut members = Vec::new();
            for agent in team.members.into_iter().flatten() {
                let agent = self.id(agent, "an agent id")?;
                if let Some(other) = team_of.get(agent.get_ref()) {
                    let first = member_line.get(agent.get_ref()).copied().unwrap_or(0);
                    let message = if other == id.get_ref() {
                        format!(
                            "agent {:?} is listed twice in team {other:?} (first at line {first})",
                            agent.get_ref()
                        )
                    } else {
                        format!(
                            "agent {:?} is already a member of team {other:?} (line {first}); an agent belongs to one team",
                            agent.get_ref()
                        )
                    };
                    return self.err(agent.span(), message);
                }
                member_line.insert(
                    agent.get_ref().clone(),
                    position(self.text, agent.span().start).0,
                );
                team_of.insert(agent.get_ref().clone(), id.get_ref().clone());
                members.push(agent.into_inner());
            }
            let sales_target = match team.sales_target {
                Some(n) => match u32::try_from(*n.get_ref()) {
                    Ok(v) if v <= 1_000_000 => Some(v),
                    _ => {
                        return self.err(
                            n.span(),
                            "want a whole number of sales per day from 0 to 1000000",
                        )
                    }
                },
                None => None,
            };
            teams.push(TeamConfig {
                id: id.into_inner(),
                lead: lead.map(Spanned::into_inner),
                supervisor: supervisor.map(Spanned::into_inner),
                members,
                sales_target,
            });
        }
        Ok(teams)
    }
}
