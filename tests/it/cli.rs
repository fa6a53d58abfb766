//! The binary's command line: `check-config` and config errors before anything starts, the
//! README's command table against the real command line, `import queue_log`'s summary.

use std::process::Command;

fn floorwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_floorwatch"))
}

#[test]
fn check_config_accepts_the_shipped_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/floorwatch.toml");
    let out = floorwatch()
        .args(["check-config", path])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_config_names_key_line_and_column_and_exits_78() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[rules.ring_answer]\nrings = 3\nring_cycle = \"5 parsecs\"\n",
    )
    .expect("write");
    let out = floorwatch()
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("column 14"), "{err}");
    assert!(err.contains("rules.ring_answer.ring_cycle"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}

#[test]
fn unreadable_config_is_a_config_error() {
    let out = floorwatch()
        .args(["check-config", "/nonexistent/floorwatch.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn run_with_a_bad_config_exits_78_before_binding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    // A port nobody else uses in this test; the bad key must stop the daemon before it binds.
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:1\"\n[rules.break_overrun]\npoints = \"two\"\n",
    )
    .expect("write");
    let out = floorwatch()
        .arg("run")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rules.break_overrun.points"), "{err}");
}

fn asterisk_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/asterisk")
        .join(name)
}

fn replay(path: &std::path::Path) -> String {
    let out = floorwatch().arg("replay").arg(path).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn import_queue_log_then_replay_gives_the_story_violations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = floorwatch()
        .args(["import", "queue_log"])
        .arg(asterisk_fixture("queue_log"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let events: Vec<_> = text
        .lines()
        .map(|l| floorwatch::event::decode_event(l).unwrap_or_else(|(_, e)| panic!("{l}: {e}")))
        .collect();
    assert_eq!(events.len(), 26, "{text}");
    assert!(
        events
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].ts <= w[1].ts),
        "seq strictly increasing in time order"
    );
    assert!(events.iter().all(|e| e.seq.is_some()));
    // The fixture's three comment lines are not queue_log lines.
    for n in 1..=3 {
        assert!(err.contains(&format!("line {n}: ")), "{err}");
    }
    let lines = std::fs::read_to_string(asterisk_fixture("queue_log"))
        .expect("fixture")
        .lines()
        .count();
    assert!(
        err.contains(&format!("{lines} lines read, 26 events, 3 malformed")),
        "every line counts, the comments too: {err}"
    );
    assert!(err.contains("CONFIGRELOAD 1"), "{err}");
    let imported = dir.path().join("imported.ndjson");
    std::fs::write(&imported, &text).expect("write");
    let got = replay(&imported);
    assert!(got.lines().count() >= 3, "{got}");
    assert_eq!(got, replay(&asterisk_fixture("story.ndjson")));
}

/// The summary once said "0 lines, 0 events, 2 malformed": its lines were only the good ones.
#[test]
fn import_queue_log_summary_counts_every_line_read_the_malformed_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("queue_log");
    std::fs::write(
        &input,
        "not a queue_log line
\n100|c|q|a|RINGNOANSWER|soon
",
    )
    .expect("write");
    let out = floorwatch()
        .args(["import", "queue_log"])
        .arg(&input)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(out.stdout.is_empty(), "no events: {:?}", out.stdout);
    assert!(
        err.contains("3 lines read, 0 events, 2 malformed"),
        "two malformed lines and a blank one: {err}"
    );
}

#[test]
fn import_queue_log_reports_a_malformed_line_by_number_and_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text =
        "100|c|q|NONE|ENTERQUEUE||1|1\n110|c|q|a|RINGNOANSWER|soon\n120|c|q|NONE|ABANDON|1|1|20\n";
    let input = dir.path().join("queue_log");
    std::fs::write(&input, text).expect("write");
    let config = dir.path().join("floorwatch.toml");
    std::fs::write(
        &config,
        "[[sources]]\nname = \"pbx\"\nkind = \"asterisk-queue-log\"\npath = \"/nonexistent\"\nreorder_window = \"5s\"\n",
    )
    .expect("write");
    let output = dir.path().join("out.ndjson");
    let out = floorwatch()
        .args(["import", "queue_log"])
        .arg(&input)
        .arg("--config")
        .arg(&config)
        .args(["--name", "pbx", "-o"])
        .arg(&output)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("line 2: RINGNOANSWER field 1 \"soon\" is not a ring time"),
        "{err}"
    );
    assert!(err.contains("3 lines read, 2 events, 1 malformed"), "{err}");
    assert!(out.stdout.is_empty(), "events go to -o");
    let written = std::fs::read_to_string(&output).expect("read");
    let types: Vec<_> = written
        .lines()
        .map(|l| {
            floorwatch::event::decode_event(l)
                .expect("event")
                .body
                .type_name()
        })
        .collect();
    assert_eq!(types, vec!["call.queued", "call.abandoned"]);
    let out = floorwatch()
        .args(["import", "queue_log"])
        .arg(&input)
        .arg("--config")
        .arg(&config)
        .args(["--name", "other"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
}

/// The options a README command-table cell names (`--flag`, and `-o`).
fn flags_in(cell: &str) -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    let b = cell.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i] == b'-' && (i == 0 || matches!(b[i - 1], b' ' | b'[' | b'(' | b'`'));
        if starts {
            let end = cell[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(cell.len(), |e| i + e);
            let flag = &cell[i..end];
            if flag.len() > 1 && flag != "--" {
                found.insert(flag.to_string());
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

/// The README's command table once left out `report`, `export` and options of `demo` and
/// `simulate`. Every command of the real command line (clap's definition, hidden ones
/// aside) has a row whose command cell names exactly its options.
#[test]
fn the_readme_command_table_names_every_command_and_every_option() {
    use clap::CommandFactory;
    let readme = include_str!("../../README.md");
    let rows: Vec<(&str, &str)> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `floorwatch "))
        .filter_map(|l| l.split_once("` |"))
        .collect();
    assert!(rows.len() >= 10, "the command table: {rows:?}");

    // Every leaf command with its path, e.g. "schedule import".
    fn leaves(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let p = format!("{path}{}", sub.get_name()).trim().to_string();
            if sub.has_subcommands() {
                leaves(sub, &format!("{p} "), out);
            } else {
                out.push((p, sub.clone()));
            }
        }
    }
    let mut commands = Vec::new();
    leaves(&floorwatch::cli::Cli::command(), "", &mut commands);
    assert!(
        commands.len() >= 11,
        "{:?}",
        commands.iter().map(|c| &c.0).collect::<Vec<_>>()
    );

    for (path, cmd) in &commands {
        let row = rows
            .iter()
            .find(|(usage, _)| {
                usage
                    .strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
            })
            .unwrap_or_else(|| panic!("no README row for `floorwatch {path}`"));
        let named = flags_in(&row.0[path.len()..]);
        let real: std::collections::BTreeSet<String> = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .flat_map(|a| {
                let long = a.get_long().map(|l| format!("--{l}"));
                let short = a.get_short().map(|c| format!("-{c}"));
                long.into_iter().chain(short)
            })
            .filter(|f| f != "--help" && f != "-h")
            .collect();
        // A short form may stand for its long one.
        let missing: Vec<_> = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_long().is_some_and(|l| l != "help"))
            .filter(|a| {
                let long = format!("--{}", a.get_long().unwrap_or_default());
                let short = a.get_short().map(|c| format!("-{c}"));
                !named.contains(&long) && !short.is_some_and(|s| named.contains(&s))
            })
            .map(|a| format!("--{}", a.get_long().unwrap_or_default()))
            .collect();
        assert!(
            missing.is_empty(),
            "`floorwatch {path}`: the README leaves out {missing:?}"
        );
        let unknown: Vec<_> = named.iter().filter(|f| !real.contains(*f)).collect();
        assert!(
            unknown.is_empty(),
            "`floorwatch {path}`: the README names {unknown:?}, which it does not take"
        );
    }
}

/// Asterisk's default `queue_log` (interfaces in ADDMEMBER/REMOVEMEMBER): imported with the
/// source's `members` table it replays as the story; without it the summary ends with the
/// one warning that names both fixes.
#[test]
fn import_queue_log_maps_members_by_the_config_and_warns_without_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let import = |config: &str| {
        let path = dir.path().join("floorwatch.toml");
        std::fs::write(&path, config).expect("write");
        let out = floorwatch()
            .args(["import", "queue_log"])
            .arg(asterisk_fixture("queue_log.default"))
            .arg("--config")
            .arg(&path)
            .args(["--name", "pbx"])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{err}");
        (String::from_utf8(out.stdout).expect("utf-8"), err)
    };
    let source = "[[sources]]\nname = \"pbx\"\nkind = \"asterisk-queue-log\"\npath = \"/var/log/asterisk/queue_log\"\n";
    let (text, err) = import(&format!(
        "{source}members = {{ \"PJSIP/801\" = \"li.na\", \"PJSIP/802\" = \"wang.fang\" }}\n"
    ));
    assert!(!err.contains("warning"), "{err}");
    assert!(!text.contains("PJSIP/"), "{text}");
    let imported = dir.path().join("imported.ndjson");
    std::fs::write(&imported, &text).expect("write");
    assert_eq!(replay(&imported), replay(&asterisk_fixture("story.ndjson")));
    let (text, err) = import(source);
    assert!(text.contains("\"agent\":\"PJSIP/801\""), "{text}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    let w = warnings[0];
    assert!(
        err.lines().last() == Some(w),
        "the warning ends the summary: {err}"
    );
    for part in [
        "\"PJSIP/801\"",
        "\"li.na\"",
        "log_membername_as_agent = yes in queues.conf",
        "members table",
    ] {
        assert!(w.contains(part), "{w}");
    }
}
