//! The config file's keys, defaults and errors (key, line, column), from TOML text.

use std::path::PathBuf;

use super::*;

fn err(text: &str) -> ConfigError {
    match Config::from_toml_str(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts key, line and column, and that `Display` is one line that names them.
fn assert_at(e: &ConfigError, key: &str, line: usize, column: usize) {
    assert_eq!(e.key.as_deref(), Some(key), "{e}");
    assert_eq!((e.line, e.column), (Some(line), Some(column)), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("line {line}, column {column}: {key}: ")),
        "{shown}"
    );
    assert!(!shown.contains('\n'), "{shown}");
}

fn assert_same_rules(a: &RulesConfig, b: &RulesConfig) {
    assert_eq!(a.ring_answer, b.ring_answer);
    assert_eq!(a.break_overrun, b.break_overrun);
    assert_eq!(a.unauthorized_pause, b.unauthorized_pause);
    assert_eq!(a.reasons, b.reasons);
    assert_eq!(a.service_level, b.service_level);
    assert_eq!(a.timezone, b.timezone);
    assert_eq!(a.timezone_name, b.timezone_name);
    assert_eq!(a.money_per_point, b.money_per_point);
    assert_eq!(a.currency, b.currency);
    assert_eq!(a.team_of, b.team_of);
    assert_eq!(a.limits, b.limits);
}

fn assert_same_source(a: &SourceConfig, b: &SourceConfig) {
    assert_eq!(a.mode, b.mode);
    assert_eq!(a.url, b.url);
    assert_eq!(a.headers, b.headers);
    assert_eq!(a.name, b.name);
    assert_eq!(a.max_frame, b.max_frame);
    assert_eq!(a.clock, b.clock);
    assert_eq!((a.delay, a.max_lag, a.idle), (b.delay, b.max_lag, b.idle));
    assert_eq!(
        (a.ping_every, a.ping_timeout, &a.ca),
        (b.ping_every, b.ping_timeout, &b.ca)
    );
}

fn assert_same_server(a: &ServerConfig, b: &ServerConfig) {
    assert_eq!(a.listen, b.listen);
    assert_eq!(a.tokens.ingest, b.tokens.ingest);
    assert_eq!(a.tokens.viewer, b.tokens.viewer);
    assert_eq!(a.tokens.lead, b.tokens.lead);
    assert_eq!(a.shutdown_grace, b.shutdown_grace);
}

#[test]
fn keepalive_ca_and_shutdown_grace_keys() {
    let c = Config::from_toml_str(
        "[server]\nshutdown_grace = \"3s\"\n[source]\nping_every = \"5s\"\nping_timeout = \"12s\"\nca = \"/etc/floorwatch/pbx-ca.pem\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.server.shutdown_grace, 3_000);
    assert_eq!(
        (c.source.ping_every, c.source.ping_timeout),
        (5_000, 12_000)
    );
    assert_eq!(
        c.source.ca.as_deref(),
        Some(std::path::Path::new("/etc/floorwatch/pbx-ca.pem"))
    );
    let d = Config::default();
    assert_eq!(d.server.shutdown_grace, 10_000);
    assert_eq!(
        (d.source.ping_every, d.source.ping_timeout),
        (10_000, 20_000)
    );
}

#[test]
fn a_ping_timeout_not_longer_than_ping_every_is_rejected() {
    let e = err("[source]\nping_every = \"10s\"\nping_timeout = \"10s\"\n");
    assert_at(&e, "source.ping_timeout", 3, 16);
    // Raising ping_every past the default timeout names ping_every.
    let e = err("[source]\nping_every = \"30s\"\n");
    assert_at(&e, "source.ping_every", 2, 14);
    let e = err("[source]\nping_every = \"0s\"\n");
    assert!(e.to_string().contains("source.ping_every"), "{e}");
    let e = err("[server]\nshutdown_grace = \"0s\"\n");
    assert!(e.to_string().contains("server.shutdown_grace"), "{e}");
    let e = err("[source]\nca = \"\"\n");
    assert!(e.to_string().contains("source.ca"), "{e}");
}

#[test]
fn empty_text_gives_defaults() {
    let c = Config::from_toml_str("").expect("empty config");
    let d = Config::default();
    assert_same_rules(&c.rules, &d.rules);
    assert_same_source(&c.source, &d.source);
    assert_same_server(&c.server, &d.server);
    assert_eq!(c.store.dir, d.store.dir);
    assert_eq!(c.teams, d.teams);
    assert_eq!(c.alerts, d.alerts);
    assert_eq!(c.ui.language, "zh-CN");
}

#[test]
fn shipped_config_file_gives_default_rules() {
    let text = include_str!("../../config/floorwatch.toml");
    let c = Config::from_toml_str(text).unwrap_or_else(|e| panic!("{e}"));
    let d = Config::default();
    assert_same_rules(&c.rules, &d.rules);
    // The whole rulebook (catalog, dispositions, attendance) as written out is the default.
    assert_eq!(c.rules.rulebook_json(), d.rules.rulebook_json());
    assert_same_source(&c.source, &d.source);
    assert_same_server(&c.server, &d.server);
    assert_eq!(c.store.dir, d.store.dir);
    assert_eq!(c.ui.language, d.ui.language);
    assert_eq!(c.limits, d.limits);
    // Every key of [limits] is written out, so the file documents them all.
    for key in [
        "max_batch",
        "max_agents",
        "max_calls",
        "max_queues",
        "max_ingest_connections",
        "max_floor_connections",
        "max_events_per_second",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{key} = "))),
            "{key} missing from config/floorwatch.toml"
        );
    }
}

#[test]
fn limits_are_read_and_checked() {
    let c = Config::from_toml_str(
        "[limits]\nmax_batch = 5\nmax_agents = 6\nmax_calls = 7\nmax_queues = 8\nmax_ingest_connections = 9\nmax_floor_connections = 10\nmax_events_per_second = 11\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.rules.limits,
        EngineLimits {
            max_agents: 6,
            max_calls: 7,
            max_queues: 8
        }
    );
    assert_eq!(
        c.limits,
        ShellLimits {
            max_batch: 5,
            max_ingest_connections: 9,
            max_floor_connections: 10,
            max_events_per_second: 11
        }
    );
    let e = err("[limits]\nmax_agents = 0\n");
    assert_at(&e, "limits.max_agents", 2, 14);
    let e = err("[limits]\nmax_events_per_second = -3\n");
    assert_at(&e, "limits.max_events_per_second", 2, 25);
    let e = err("[limits]\nmax_ingest_connections = 99999999\n");
    assert_at(&e, "limits.max_ingest_connections", 2, 26);
    let e = err("[limits]\nmax_tracked = 1\n");
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn bad_duration_names_key_line_column() {
    let e = err("[rules.ring_answer]\nrings = 3\nring_cycle = \"5 parsecs\"\n");
    assert_at(&e, "rules.ring_answer.ring_cycle", 3, 14);
    assert!(
        e.message.starts_with("not a valid duration: \"5 parsecs\""),
        "{e}"
    );
}

#[test]
fn negative_and_zero_durations_are_rejected() {
    let e = err("[rules.unauthorized_pause]\ngrace = \"-5s\"\n");
    assert_at(&e, "rules.unauthorized_pause.grace", 2, 9);
    let e = err("[rules.ring_answer]\nring_cycle = \"0s\"\n");
    assert_at(&e, "rules.ring_answer.ring_cycle", 2, 14);
    let e = err("[rules.ring_answer]\nrings = 0\n");
    assert_at(&e, "rules.ring_answer.rings", 2, 9);
    let e = err("[rules.ring_answer]\nring_cycle = 5\n");
    assert_at(&e, "rules.ring_answer.ring_cycle", 2, 14);
}

/// `rings = "three"` once said "a whole number ≥ 0", and then `rings = 0` was refused.
#[test]
fn a_count_in_the_wrong_words_and_out_of_range_get_errors_that_agree() {
    for text in ["rings = \"three\"", "rings = 2.5"] {
        let e = err(&format!("[rules.ring_answer]\n{text}\n"));
        assert_at(&e, "rules.ring_answer.rings", 2, 9);
        assert!(e.message.ends_with("expected a whole number"), "{e}");
    }
    for n in ["0", "-1"] {
        let e = err(&format!("[rules.ring_answer]\nrings = {n}\n"));
        assert_at(&e, "rules.ring_answer.rings", 2, 9);
        assert_eq!(e.message, "must be at least 1", "{e}");
    }
    let e = err("[rules.ring_answer]\nrings = 4294967296\n");
    assert_eq!(e.message, "must be at most 4294967295", "{e}");
    for n in [1u32, 4_294_967_295] {
        let c = Config::from_toml_str(&format!("[rules.ring_answer]\nrings = {n}\n"))
            .expect("a whole number ≥ 1 is accepted");
        assert_eq!(c.rules.ring_answer.rings, n);
    }
    // The other counts speak the same words, not the parser's type names.
    let e = err("[limits]\nmax_agents = \"x\"\n");
    assert_at(&e, "limits.max_agents", 2, 14);
    assert!(e.message.ends_with("expected a whole number"), "{e}");
    let e = err("[rules.ring_answer]\npoints = -1\n");
    assert!(
        e.message
            .ends_with("expected a whole number from 0 to 4294967295"),
        "{e}"
    );
}

#[test]
fn durations_round_to_milliseconds() {
    let c = Config::from_toml_str(
        "[source]\ndelay = \"0.2s\"\n[rules.break_overrun]\ndaily_allowance = \"1h30m\"\n",
    )
    .expect("valid");
    assert_eq!(c.source.delay, 200);
    assert_eq!(c.rules.break_overrun.daily_allowance, 5_400_000);
}

#[test]
fn unknown_key_is_named() {
    let e = err("[rules.ring_answer]\nrings = 3\nringz = 4\n");
    assert_at(&e, "rules.ring_answer.ringz", 3, 1);
    assert!(e.message.contains("unknown key `ringz`"), "{e}");
    let e = err("[server]\nlisten = \"127.0.0.1:1\"\n\n[servre]\n");
    assert_at(&e, "servre", 4, 2);
}

#[test]
fn bad_timezone_names_key() {
    let e = err("[appraisal]\ntimezone = \"Mars/Olympus_Mons\"\n");
    assert_at(&e, "appraisal.timezone", 2, 12);
}

#[test]
fn agent_in_two_teams_is_an_error() {
    let text = "[[teams]]\nid = \"hotline-1\"\nmembers = [\"a-1\", \"a-2\"]\n\n\
                [[teams]]\nid = \"hotline-2\"\nmembers = [\"a-3\", \"a-2\"]\n";
    let e = err(text);
    assert_at(&e, "teams[1].members", 7, 19);
    assert!(e.message.contains("\"hotline-1\""), "{e}");
}

#[test]
fn duplicate_and_bad_team_ids_are_errors() {
    let e = err("[[teams]]\nid = \"t\"\n[[teams]]\nid = \"t\"\n");
    assert_at(&e, "teams[1].id", 4, 6);
    let e = err("[[teams]]\nid = \"\"\n");
    assert_at(&e, "teams[0].id", 2, 6);
    let long = "x".repeat(129);
    let e = err(&format!("[[teams]]\nid = \"t\"\nmembers = [\"{long}\"]\n"));
    assert_at(&e, "teams[0].members", 3, 12);
    let e = err("[[teams]]\nlead = \"zhang.wei\"\n");
    assert_eq!(e.key.as_deref(), Some("teams[0].id"), "{e}");
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn connect_mode_needs_a_url() {
    let e = err("[source]\nmode = \"connect\"\n");
    assert_at(&e, "source.url", 2, 8);
    let e = err("[source]\nmode = \"connect\"\nurl = \"http://pbx/events\"\n");
    assert_at(&e, "source.url", 3, 7);
    let c = Config::from_toml_str(
        "[source]\nmode = \"connect\"\nurl = \"wss://pbx.example.net/events\"\n\
         headers = { Authorization = \"Bearer x\" }\nname = \"pbx-1\"\n",
    )
    .expect("valid");
    assert_eq!(c.source.mode, SourceMode::Connect);
    assert_eq!(
        c.source.headers,
        vec![("Authorization".to_string(), "Bearer x".to_string())]
    );
    assert_eq!(c.source.name, "pbx-1");
}

#[test]
fn open_roles_on_a_public_listen_address_are_refused() {
    let e = err("[server]\nlisten = \"0.0.0.0:8080\"\n[server.tokens]\ningest = [\"i\"]\n");
    assert_at(&e, "server.listen", 2, 10);
    assert!(e.message.contains("viewer, lead"), "{e}");
    assert!(!e.message.contains("ingest"), "{e}");
    let e = err("[server]\nlisten = \"[::]:8080\"\n");
    assert!(e.message.contains("ingest, viewer, lead"), "{e}");
    let all = "[server]\nlisten = \"0.0.0.0:8080\"\n[server.tokens]\n\
               ingest = [\"i\"]\nviewer = [\"v\"]\nlead = [\"l\"]\n";
    assert!(Config::from_toml_str(all).is_ok());
    assert!(Config::from_toml_str("[server]\nlisten = \"[::1]:8080\"\n").is_ok());
}

#[test]
fn pseudonymized_agents_need_a_long_enough_key() {
    let e = err("[metrics]\npseudonymize_agents = true\n");
    assert_at(&e, "metrics.pseudonymize_agents", 2, 23);
    let e = err("[metrics]\npseudonymize_agents = true\npseudonym_key = \"short\"\n");
    assert_at(&e, "metrics.pseudonym_key", 3, 17);
    let c = Config::from_toml_str(
        "[metrics]\npseudonymize_agents = true\npseudonym_key = \"0123456789abcdef\"\n",
    )
    .expect("valid");
    assert_eq!(
        c.metrics.pseudonym_key,
        Some(Secret("0123456789abcdef".into()))
    );
    let c = Config::from_toml_str("[metrics]\npseudonymize_agents = false\n").expect("valid");
    assert!(c.metrics.pseudonym_key.is_none());
}

#[test]
fn tls_wants_both_files() {
    let c =
        Config::from_toml_str("[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n").expect("valid");
    let tls = c.server.tls.expect("tls");
    assert_eq!(tls.cert, PathBuf::from("c.pem"));
    assert_eq!(tls.key, PathBuf::from("k.pem"));
    let e = err("[server.tls]\ncert = \"c.pem\"\n");
    assert_eq!(e.key.as_deref(), Some("server.tls.key"), "{e}");
    let e = err("[server.tls]\ncert = \"\"\nkey = \"k.pem\"\n");
    assert_at(&e, "server.tls.cert", 2, 8);
}

#[test]
fn bad_listen_names_key() {
    let e = err("[server]\nlisten = \"localhost:http\"\n");
    assert_at(&e, "server.listen", 2, 10);
}

#[test]
fn bad_enum_value_names_key() {
    let e = err("[source]\nclock = \"wall\"\n");
    assert_at(&e, "source.clock", 2, 9);
    assert!(e.message.contains("`event`"), "{e}");
    let e = err("[ui]\nlanguage = \"fr\"\n");
    assert_at(&e, "ui.language", 2, 12);
}

#[test]
fn bad_alertmanager_url_names_key() {
    let e = err("[alerts.alertmanager]\nurl = \"127.0.0.1:9093\"\n");
    assert_at(&e, "alerts.alertmanager.url", 2, 7);
}

#[test]
fn alerts_section_parses_every_key() {
    let c = Config::from_toml_str(
        "[alerts]\nescalate_after = \"2m\"\nresolve_hold = \"30s\"\nresend_every = \"20s\"\n\
         max_pending = 50\ntimeout = \"2s\"\nretry_max = \"10s\"\n\
         external_url = \"https://floor.example.com/\"\n\
         [alerts.alertmanager]\nurl = \"http://am1:9093\"\n\
         urls = [\"http://am2:9093\", \"http://am1:9093\"]\n\
         [alerts.webhook]\nurl = \"https://hooks.example.com/x\"\nsecret = \"s3cret\"\n",
    )
    .expect("valid");
    let a = &c.alerts;
    assert_eq!(a.alertmanager, ["http://am1:9093", "http://am2:9093"]);
    assert_eq!(
        a.webhook,
        Some(WebhookConfig {
            url: "https://hooks.example.com/x".into(),
            secret: Some("s3cret".into())
        })
    );
    assert_eq!(
        (a.escalate_after, a.resolve_hold, a.resend_every),
        (120_000, 30_000, 20_000)
    );
    assert_eq!((a.max_pending, a.timeout, a.retry_max), (50, 2_000, 10_000));
    assert_eq!(a.external_url.as_deref(), Some("https://floor.example.com"));
    assert!(a.enabled());
    assert!(!Config::default().alerts.enabled());
}

#[test]
fn bad_alert_keys_name_key() {
    let e = err("[alerts.alertmanager]\nurls = [\"http://ok:9093\", \"ftp://x\"]\n");
    assert_at(&e, "alerts.alertmanager.urls", 2, 27);
    let e = err("[alerts]\nescalate_after = \"0s\"\n");
    assert_at(&e, "alerts.escalate_after", 2, 18);
    let e = err("[alerts]\nmax_pending = 0\n");
    assert_at(&e, "alerts.max_pending", 2, 15);
    let e = err("[alerts.webhook]\nsecret = \"x\"\n");
    assert!(e.to_string().contains("url"), "{e}");
}

#[test]
fn token_with_space_names_key() {
    let e = err("[server.tokens]\nviewer = [\"ok\", \"has space\"]\n");
    assert_at(&e, "server.tokens.viewer", 2, 17);
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = err("[store]\ndir = data\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.column.is_some(), "{e}");
}

#[test]
fn max_frame_units() {
    for (text, want) in [
        ("\"1MiB\"", 1 << 20),
        ("\"512KiB\"", 512 << 10),
        ("\"65536\"", 65536),
        ("65536", 65536),
    ] {
        let c = Config::from_toml_str(&format!("[source]\nmax_frame = {text}\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.source.max_frame, want, "{text}");
    }
    let e = err("[source]\nmax_frame = \"1MB\"\n");
    assert_at(&e, "source.max_frame", 2, 13);
    let e = err("[source]\nmax_frame = 0\n");
    assert_at(&e, "source.max_frame", 2, 13);
}

#[test]
fn reasons_table_replaces_defaults() {
    let c = Config::from_toml_str(
        "[reasons.lunch]\nmax = \"45m\"\nallowance = true\n[reasons.coaching]\napproval = true\n",
    )
    .expect("valid");
    let names: Vec<&str> = c.rules.reasons.keys().map(String::as_str).collect();
    assert_eq!(names, ["coaching", "lunch"]);
    assert_eq!(
        c.rules.reasons["lunch"],
        ReasonRule {
            max: Some(45 * 60_000),
            allowance: true,
            approval: false
        }
    );
    assert!(c.rules.reasons["coaching"].approval);
    let e = err("[reasons.break]\nmax = \"0s\"\n");
    assert_at(&e, "reasons.break.max", 2, 7);
}

#[test]
fn teams_fill_team_of() {
    let c = Config::from_toml_str(
        "[[teams]]\nid = \"hotline-1\"\nlead = \"zhang.wei\"\nmembers = [\"a-1\", \"a-2\"]\n\
         [[teams]]\nid = \"hotline-2\"\nsupervisor = \"li.na\"\nmembers = [\"a-3\"]\n",
    )
    .expect("valid");
    assert_eq!(c.teams.len(), 2);
    assert_eq!(c.teams[0].lead.as_deref(), Some("zhang.wei"));
    assert_eq!(c.teams[1].supervisor.as_deref(), Some("li.na"));
    assert_eq!(c.rules.team_of.len(), 3);
    assert_eq!(c.rules.team_of["a-1"], "hotline-1");
    assert_eq!(c.rules.team_of["a-2"], "hotline-1");
    assert_eq!(c.rules.team_of["a-3"], "hotline-2");
}

#[test]
fn money_per_point_must_not_be_negative() {
    let e = err("[appraisal]\nmoney_per_point = -1\n");
    assert_at(&e, "appraisal.money_per_point", 2, 19);
    let c = Config::from_toml_str("[appraisal]\nmoney_per_point = 2.5\n").expect("valid");
    assert_eq!(c.rules.money_per_point, 2.5);
}

#[test]
fn adapters_from_source_and_sources() {
    let c = Config::from_toml_str(
        "[source]\nkind = \"asterisk-ami\"\nname = \"pbx-1\"\naddress = \"10.0.0.5\"\n\
         username = \"floorwatch\"\nsecret = \"s3cret\"\nagent_id = \"interface\"\n\
         acw_reasons = [\"ACW\", \"Wrapup\"]\nauto_pause_reason = \"no_answer\"\n\
         [[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/var/log/asterisk/queue_log\"\n\
         reorder_window = \"30s\"\n\
         [[sources]]\nkind = \"freeswitch-esl\"\nname = \"fs\"\naddress = \"fs.local:9000\"\n\
         password = \"ClueCon\"\nagent_id = \"before-at\"\nbreak_reason = \"lunch\"\n",
    )
    .expect("valid");
    assert_eq!(c.source.kind, SourceKind::AsteriskAmi);
    assert_eq!(c.adapters.len(), 3);
    assert_eq!(c.adapters[0].name, "pbx-1");
    match &c.adapters[0].kind {
        AdapterKind::AsteriskAmi(a) => {
            assert_eq!(a.address, "10.0.0.5:5038");
            assert_eq!(a.username, "floorwatch");
            assert_eq!(a.secret, Secret("s3cret".into()));
            assert_eq!(a.settings.agent_id, AmiAgentId::Interface);
            assert_eq!(a.settings.acw_reasons, vec!["ACW", "Wrapup"]);
            assert_eq!(a.settings.auto_pause_reason, "no_answer");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.adapters[1].name, "asterisk-queue-log");
    match &c.adapters[1].kind {
        AdapterKind::AsteriskQueueLog(q) => {
            assert_eq!(q.path, PathBuf::from("/var/log/asterisk/queue_log"));
            assert_eq!(q.reorder_window, 30_000);
            assert_eq!(q.settings, AmiSettings::default());
        }
        other => panic!("{other:?}"),
    }
    match &c.adapters[2].kind {
        AdapterKind::FreeswitchEsl(f) => {
            assert_eq!(f.address, "fs.local:9000");
            assert_eq!(f.password, Secret("ClueCon".into()));
            assert_eq!(f.settings.agent_id, EslAgentId::BeforeAt);
            assert_eq!(f.settings.break_reason, "lunch");
        }
        other => panic!("{other:?}"),
    }
    // Secrets never show in Debug output (logs of the config).
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("ClueCon"),
        "{shown}"
    );
    // The default is the floorwatch protocol and no adapter.
    let d = Config::from_toml_str("").expect("empty");
    assert_eq!(d.source.kind, SourceKind::Floorwatch);
    assert!(d.adapters.is_empty());
    let f = Config::from_toml_str("[source]\nkind = \"floorwatch\"\n").expect("valid");
    assert!(f.adapters.is_empty());
}

#[test]
fn adapter_errors_name_the_key() {
    let e = err("[source]\nkind = \"asterisk-ami\"\nusername = \"u\"\nsecret = \"s\"\n");
    assert_at(&e, "source.address", 2, 8);
    let e = err("[[sources]]\nkind = \"asterisk-ami\"\naddress = \"pbx\"\nsecret = \"s\"\n");
    assert_at(&e, "sources[0].username", 2, 8);
    let e = err("[[sources]]\nkind = \"freeswitch-esl\"\naddress = \"fs:80x\"\npassword = \"p\"\n");
    assert_at(&e, "sources[0].address", 3, 11);
    let e = err("[[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/q\"\npassword = \"p\"\n");
    assert_at(&e, "sources[0].password", 4, 12);
    let e = err("[[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/q\"\nagent_id = \"uid\"\n");
    assert_at(&e, "sources[0].agent_id", 4, 12);
    let e = err("[[sources]]\nkind = \"floorwatch\"\n");
    assert_at(&e, "sources[0].kind", 2, 8);
    let e = err("[[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/q\"\nurl = \"ws://x\"\n");
    assert_at(&e, "sources[0].url", 4, 7);
    let e = err("[[sources]]\nkind = \"pbx\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    let e = err("[source]\npath = \"/q\"\n");
    assert_at(&e, "source.path", 2, 8);
    let e = err("[source]\nkind = \"asterisk-queue-log\"\nmode = \"connect\"\npath = \"/q\"\n");
    assert_at(&e, "source.mode", 3, 8);
    // Two sources of one kind need names of their own.
    let e = err(
        "[[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/a\"\n\
         [[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/b\"\n",
    );
    assert!(e.message.contains("asterisk-queue-log"), "{e}");
    let e = err("[[sources]]\nkind = \"asterisk-queue-log\"\nname = \"api\"\npath = \"/a\"\n");
    assert!(e.message.contains("reserved"), "{e}");
}

#[test]
fn connect_mode_needs_a_websocket_url() {
    let mut c = Config::default();
    assert!(c.validate().is_ok());
    c.source.mode = SourceMode::Connect;
    let e = c.validate().expect_err("no url");
    assert_eq!(e.key.as_deref(), Some("source.url"));
    c.source.url = Some("http://pbx/events".into());
    assert!(c.validate().is_err());
    c.source.url = Some("wss://pbx/events".into());
    assert!(c.validate().is_ok());
}

#[test]
fn asterisk_members_tables_map_interfaces_to_member_names() {
    let c = Config::from_toml_str(
        "[[sources]]\nkind = \"asterisk-queue-log\"\nname = \"qlog\"\npath = \"/q\"\n\
         members = { \"PJSIP/801\" = \"Alice\", \"Local/agent2@agents/n\" = \"Bob\" }\n\
         [[sources]]\nkind = \"asterisk-ami\"\nname = \"ami\"\naddress = \"pbx\"\n\
         username = \"u\"\nsecret = \"s\"\nagent_id = \"interface\"\n\
         [sources.members]\n\"PJSIP/801\" = \"Alice\"\n",
    )
    .expect("valid");
    let AdapterKind::AsteriskQueueLog(q) = &c.adapters[0].kind else {
        panic!("{:?}", c.adapters[0]);
    };
    let m = &q.settings.members;
    assert_eq!(m.name_of("Local/agent2@agents/n"), Some("Bob"));
    assert_eq!(m.interface_of("Alice"), Some("PJSIP/801"));
    assert_eq!(q.settings.agent("PJSIP/801"), "Alice");
    assert_eq!(
        q.settings.agent("Carol"),
        "Carol",
        "not in the table: as written"
    );
    let AdapterKind::AsteriskAmi(a) = &c.adapters[1].kind else {
        panic!("{:?}", c.adapters[1]);
    };
    assert_eq!(
        a.settings.agent("Alice"),
        "PJSIP/801",
        "interface: the way back"
    );
    assert_eq!(a.settings.agent("PJSIP/801"), "PJSIP/801");
}

#[test]
fn asterisk_members_errors_name_the_key() {
    let qlog = "[[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/q\"\n";
    // The key is not an interface (names and interfaces the wrong way round).
    let e = err(&format!(
        "{qlog}members = {{ \"Alice\" = \"PJSIP/801\" }}\n"
    ));
    assert_at(&e, "sources[0].members.Alice", 4, 13);
    assert!(e.message.contains("not an interface"), "{e}");
    let e = err(&format!("{qlog}members = {{ \"PJSIP/801\" = \"\" }}\n"));
    assert_at(&e, "sources[0].members.\"PJSIP/801\"", 4, 27);
    let long = "x".repeat(129);
    let e = err(&format!(
        "{qlog}members = {{ \"PJSIP/801\" = \"{long}\" }}\n"
    ));
    assert!(e.message.contains("129 bytes"), "{e}");
    // With agent_id = "interface" a name must map back to one interface.
    let two = "members = { \"PJSIP/801\" = \"Alice\", \"PJSIP/901\" = \"Alice\" }\n";
    assert!(Config::from_toml_str(&format!("{qlog}{two}")).is_ok());
    let e = err(&format!("{qlog}agent_id = \"interface\"\n{two}"));
    assert_eq!(
        e.key.as_deref(),
        Some("sources[0].members.\"PJSIP/901\""),
        "{e}"
    );
    assert!(e.message.contains("one interface"), "{e}");
    // Not a key of FreeSWITCH or of the floorwatch protocol.
    let e = err(
        "[[sources]]\nkind = \"freeswitch-esl\"\npassword = \"p\"\naddress = \"fs\"\n\
         members = { \"PJSIP/801\" = \"Alice\" }\n",
    );
    assert_at(&e, "sources[0].members", 5, 13);
    let e = err("[source]\nmembers = { \"PJSIP/801\" = \"Alice\" }\n");
    assert_eq!(e.line, Some(2), "{e}");
}
