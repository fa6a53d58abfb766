//! The Grafana dashboards of `dashboards/`. No Grafana server runs here, so they are checked
//! two ways:
//!
//! - against Grafana's own TypeScript types (`@grafana/schema`, `tsc --strict`): the dashboard
//!   model, each panel's options and custom field config against its plugin's types, each
//!   target against the Prometheus query shape. TypeScript and the schema are installed with
//!   npm into `target/grafana-schema/` once and reused;
//! - every PromQL expression of every panel (and every variable query) against a real
//!   Prometheus that scraped a daemon with a live floor: each must parse and return data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use floorwatch::clock::Clock;
use floorwatch::config::WebhookConfig;
use serde_json::{json, Value};

use crate::daemon_support::{self as sup, Source};
use crate::servers::{self, Prometheus, WebhookReceiver};

const DASHBOARDS: &[&str] = &["floor.json", "team.json", "appraisal.json"];

/// Pinned so that a new release cannot change the verdict on unchanged dashboards.
const SCHEMA_VERSION: &str = "13.2.3";
const TYPESCRIPT_VERSION: &str = "7.0.2";

/// Panel types the dashboards may use: the plugin's module in `@grafana/schema` and whether it
/// has a custom field config type. A panel of any other type fails the check until it is
/// added here.
const PANEL_TYPES: &[(&str, &str, bool)] = &[
    ("stat", "stat/panelcfg/x/StatPanelCfg_types.gen", false),
    (
        "timeseries",
        "timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen",
        true,
    ),
    (
        "bargauge",
        "bargauge/panelcfg/x/BarGaugePanelCfg_types.gen",
        false,
    ),
    (
        "state-timeline",
        "statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen",
        true,
    ),
    ("table", "table/panelcfg/x/TablePanelCfg_types.gen", true),
];

/// Concrete values for Grafana's interval variables when an expression is run by hand.
const INTERVALS: &[(&str, &str)] = &[
    ("$__rate_interval", "1m"),
    ("$__interval", "15s"),
    ("$__range", "1h"),
];

fn dashboard_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("dashboards")
        .join(name)
}

fn load(name: &str) -> Value {
    let path = dashboard_path(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, rows' nested panels included, rows themselves left out.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten());
        } else {
            out.push(p);
        }
    }
    out
}

fn variables(d: &Value) -> Vec<&Value> {
    d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

// ---- type check with Grafana's own types -------------------------------------------------

/// `target/grafana-schema/`: the npm cache of these tests, outside the repository.
fn schema_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("grafana-schema")
}

/// The directory whose `node_modules` holds the pinned TypeScript and `@grafana/schema`;
/// installs them on first use. One install per process at a time; it goes into a directory of
/// this process and is renamed into place, so other processes never see half an install.
fn schema_install() -> PathBuf {
    static INSTALL: OnceLock<PathBuf> = OnceLock::new();
    INSTALL.get_or_init(install).clone()
}

fn install() -> PathBuf {
    let root = schema_root();
    let dir = root.join(format!("schema-{SCHEMA_VERSION}-ts-{TYPESCRIPT_VERSION}"));
    let ready = |d: &Path| {
        d.join("node_modules/typescript/bin/tsc").is_file()
            && d.join("node_modules/@grafana/schema/package.json")
                .is_file()
    };
    if ready(&dir) {
        return dir;
    }
    let tmp = root.join(format!("install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("create install dir");
    let package = json!({
        "private": true,
        "dependencies": {"@grafana/schema": SCHEMA_VERSION, "typescript": TYPESCRIPT_VERSION},
    });
    std::fs::write(tmp.join("package.json"), package.to_string()).expect("write package.json");
    let out = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ])
        .current_dir(&tmp)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run npm ({e}): scripts/test installs it (apt-get install npm)")
        });
    assert!(
        out.status.success(),
        "npm install failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ready(&tmp), "npm install left no tsc or @grafana/schema");
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process got there first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(ready(&dir), "{} not ready", dir.display());
    dir
}

/// What every generated file starts with: the imports and the two mapped types that let JSON
/// meet TypeScript's enums.
fn prelude() -> String {
    let mut s = String::from("import type { Dashboard } from '@grafana/schema';\n");
    for (i, (_, module, _)) in PANEL_TYPES.iter().enumerate() {
        s.push_str(&format!(
            "import type * as P{i} from '@grafana/schema/dist/esm/raw/composable/{module}';\n"
        ));
    }
    s.push_str(
        r#"
// T as JSON spells it: an enum member is its value ("thresholds", not
// FieldColorModeId.Thresholds); keys, optionality and value sets stay as Grafana declares them.
type Json<T> = T extends string ? `${T}`
  : T extends number | boolean | null | undefined ? T
  : T extends Array<infer U> ? Array<Json<U>>
  : T extends object ? { [K in keyof T]: Json<T[K]> }
  : T;
// Json<T> with every key optional at every depth: Grafana fills the panel options and field
// config a dashboard leaves out from the plugin's defaults. Unknown keys and bad values still
// fail.
type Loose<T> = T extends string ? `${T}`
  : T extends number | boolean | null | undefined ? T
  : T extends Array<infer U> ? Array<Loose<U>>
  : T extends object ? { [K in keyof T]?: Loose<T[K]> }
  : T;
// A target of Grafana's Prometheus data source (packages/grafana-prometheus, dataquery.ts);
// @grafana/schema does not ship this one.
interface PromTarget {
  refId: string;
  expr: string;
  datasource: { type: 'prometheus'; uid: string };
  editorMode?: 'code' | 'builder';
  format?: 'time_series' | 'table' | 'heatmap';
  instant?: boolean;
  range?: boolean;
  exemplar?: boolean;
  legendFormat?: string;
  interval?: string;
  intervalFactor?: number;
  hide?: boolean;
}
"#,
    );
    s
}

/// One TypeScript file that type-checks dashboard `d`: the whole model against `Dashboard`,
/// then each panel's options, custom field config and targets against their own types.
fn typescript_for(d: &Value) -> String {
    let mut s = prelude();
    let j = |v: &Value| serde_json::to_string_pretty(v).expect("json");
    s.push_str(&format!(
        "\nexport const dashboard = ({}) satisfies Json<Dashboard>;\n",
        j(d)
    ));
    for (n, p) in panels(d).into_iter().enumerate() {
        let ty = p["type"].as_str().unwrap_or_default();
        let Some(i) = PANEL_TYPES.iter().position(|(t, _, _)| *t == ty) else {
            // Makes tsc fail with a line that names the panel.
            s.push_str(&format!(
                "export const panel_{n}_type: 'a panel type of PANEL_TYPES' = {};\n",
                j(&p["type"])
            ));
            continue;
        };
        s.push_str(&format!(
            "export const panel_{n}_options = ({}) satisfies Loose<P{i}.Options>;\n",
            j(&p["options"])
        ));
        let custom = &p["fieldConfig"]["defaults"]["custom"];
        if PANEL_TYPES[i].2 {
            if !custom.is_null() {
                s.push_str(&format!(
                    "export const panel_{n}_custom = ({}) satisfies Loose<P{i}.FieldConfig>;\n",
                    j(custom)
                ));
            }
        } else if !custom.is_null() {
            s.push_str(&format!(
                "export const panel_{n}_custom: Record<string, never> = {};\n",
                j(custom)
            ));
        }
        s.push_str(&format!(
            "export const panel_{n}_targets = ({}) satisfies PromTarget[];\n",
            j(&p["targets"])
        ));
    }
    s
}

/// Writes each `(file stem, dashboard)` as a `.ts` file in a fresh directory inside the
/// install and runs `tsc --noEmit --strict` over them: success and tsc's output.
fn type_check(label: &str, dashboards: &[(String, Value)]) -> (bool, String) {
    let install = schema_install();
    let dir = install.join(format!("check-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create check dir");
    let mut files = Vec::new();
    for (stem, d) in dashboards {
        let file = format!("{stem}.ts");
        std::fs::write(dir.join(&file), typescript_for(d)).expect("write ts");
        files.push(file);
    }
    let tsconfig = json!({
        "compilerOptions": {
            "strict": true, "noEmit": true, "target": "es2022", "module": "esnext",
            "moduleResolution": "bundler", "skipLibCheck": true, "types": [],
        },
        "files": files,
    });
    std::fs::write(dir.join("tsconfig.json"), tsconfig.to_string()).expect("write tsconfig");
    let out = Command::new("node")
        .arg(install.join("node_modules/typescript/bin/tsc"))
        .args(["--noEmit", "--strict", "--pretty", "false", "-p"])
        .arg(dir.join("tsconfig.json"))
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): scripts/test installs it (apt-get install nodejs)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    (out.status.success(), text)
}

#[test]
fn every_dashboard_type_checks_against_grafanas_own_types() {
    let began = Instant::now();
    let all: Vec<(String, Value)> = DASHBOARDS
        .iter()
        .map(|name| (name.trim_end_matches(".json").to_string(), load(name)))
        .collect();
    let (ok, out) = type_check("dashboards", &all);
    assert!(ok, "tsc rejects a dashboard:\n{out}");
    eprintln!(
        "type check of {} dashboards: {:?}",
        all.len(),
        began.elapsed()
    );
}

/// `floor.json` with one change: the key or value at `path` (keys, and indexes of arrays)
/// renamed or replaced.
fn broken(path: &[&str], change: impl FnOnce(&mut serde_json::Map<String, Value>, &str)) -> Value {
    let mut d = load("floor.json");
    let (last, parents) = path.split_last().expect("a path");
    let mut v = &mut d;
    for k in parents {
        v = match k.parse::<usize>() {
            Ok(i) => &mut v[i],
            Err(_) => &mut v[*k],
        };
    }
    let obj = v
        .as_object_mut()
        .unwrap_or_else(|| panic!("{path:?} is not in an object"));
    assert!(obj.contains_key(*last), "no {path:?} in floor.json");
    change(obj, last);
    d
}

fn rename(to: &'static str) -> impl FnOnce(&mut serde_json::Map<String, Value>, &str) {
    move |obj, key| {
        let v = obj.remove(key).expect("key");
        obj.insert(to.into(), v);
    }
}

fn set(to: Value) -> impl FnOnce(&mut serde_json::Map<String, Value>, &str) {
    move |obj, key| {
        obj.insert(key.into(), to);
    }
}

/// Proves the check can fail: each copy has one mistake Grafana would not take (or would
/// silently drop), and tsc must name every copy.
#[test]
fn the_type_check_rejects_misspelled_keys_and_bad_values() {
    // Panel 1 is the first stat, panel 9 the first time series (panel 0 is a row).
    let first_stat = load("floor.json")["panels"][1]["type"].clone();
    assert_eq!(first_stat, "stat");
    let first_series = load("floor.json")["panels"][9]["type"].clone();
    assert_eq!(first_series, "timeseries");
    let cases: Vec<(&str, Value)> = vec![
        ("dashboard_key", broken(&["refresh"], rename("refrsh"))),
        (
            "panel_key",
            broken(&["panels", "1", "gridPos"], rename("gridpos")),
        ),
        (
            "field_config_key",
            broken(
                &["panels", "1", "fieldConfig", "defaults", "unit"],
                rename("units"),
            ),
        ),
        (
            "color_mode_value",
            broken(
                &["panels", "1", "fieldConfig", "defaults", "color", "mode"],
                set(json!("threshold")),
            ),
        ),
        (
            "stat_option_key",
            broken(
                &["panels", "1", "options", "colorMode"],
                rename("colourMode"),
            ),
        ),
        (
            "stat_option_value",
            broken(&["panels", "1", "options", "graphMode"], set(json!("bars"))),
        ),
        (
            "series_custom_value",
            broken(
                &[
                    "panels",
                    "9",
                    "fieldConfig",
                    "defaults",
                    "custom",
                    "drawStyle",
                ],
                set(json!("lines")),
            ),
        ),
        (
            "target_key",
            broken(
                &["panels", "1", "targets", "0", "legendFormat"],
                rename("legend"),
            ),
        ),
        (
            "variable_type",
            broken(&["templating", "list", "1", "type"], set(json!("querry"))),
        ),
        (
            "threshold_value_type",
            broken(
                &[
                    "panels",
                    "1",
                    "fieldConfig",
                    "defaults",
                    "thresholds",
                    "steps",
                    "1",
                    "value",
                ],
                set(json!("3")),
            ),
        ),
    ];
    let files: Vec<(String, Value)> = cases
        .iter()
        .map(|(name, d)| ((*name).to_string(), d.clone()))
        .collect();
    let (ok, out) = type_check("broken", &files);
    assert!(!ok, "tsc accepted every broken copy:\n{out}");
    for (name, _) in &cases {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{name}.ts(")) && l.contains("error TS")),
            "tsc did not reject {name}.ts:\n{out}"
        );
    }
}

// ---- structure that the types cannot say --------------------------------------------------

fn uses_datasource_variable(v: &Value) -> bool {
    v["datasource"] == json!({"type": "prometheus", "uid": "${datasource}"})
}

#[test]
fn every_panel_target_and_query_variable_uses_the_datasource_variable() {
    let mut uids = BTreeSet::new();
    for name in DASHBOARDS {
        let d = load(name);
        assert!(
            uids.insert(d["uid"].as_str().unwrap_or_default().to_string()),
            "{name}: uid missing or shared"
        );
        let vars = variables(&d);
        let ds = vars
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{name}: no datasource variable"));
        assert_eq!(ds["type"], "datasource", "{name}");
        assert_eq!(ds["query"], "prometheus", "{name}");
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert!(
                uses_datasource_variable(v),
                "{name}: variable {}",
                v["name"]
            );
        }
        let mut ids = BTreeSet::new();
        for p in d["panels"].as_array().into_iter().flatten() {
            assert!(ids.insert(p["id"].as_u64()), "{name}: panel id {}", p["id"]);
        }
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(uses_datasource_variable(p), "{name}: panel {title}");
            assert!(
                title
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{name}: panel {title:?} has no Chinese in its title"
            );
            assert!(
                p["fieldConfig"]["defaults"]["unit"].is_string(),
                "{name}: panel {title:?} sets no unit"
            );
            let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            assert!(!targets.is_empty(), "{name}: panel {title:?} has no target");
            for t in targets {
                assert!(uses_datasource_variable(t), "{name}: a target of {title:?}");
                assert!(t["expr"].is_string(), "{name}: a target of {title:?}");
            }
        }
    }
    assert_eq!(load("floor.json")["refresh"], "5s");
    assert_eq!(load("team.json")["refresh"], "5s");
}

/// Every selector of a floorwatch series, in panels and variable queries, is narrowed to the
/// `site` variable (federated sites, docs/scale-out.md), and the variable itself comes right
/// after the data source, so that the others can use it.
#[test]
fn every_selector_is_narrowed_to_the_site_variable() {
    for name in DASHBOARDS {
        let d = load(name);
        let vars = variables(&d);
        let site = vars
            .iter()
            .position(|v| v["name"] == "site")
            .unwrap_or_else(|| panic!("{name}: no site variable"));
        assert_eq!(vars[site - 1]["name"], "datasource", "{name}");
        assert_eq!(vars[site]["includeAll"], true, "{name}");
        assert_eq!(vars[site]["allValue"], ".*", "{name}");
        let mut all: Vec<String> = expressions(name, &d)
            .into_iter()
            .map(|e| e.promql)
            .collect();
        all.extend(
            vars.iter()
                .filter(|v| v["type"] == "query")
                .filter_map(|v| v["query"].as_str().map(str::to_string)),
        );
        for promql in all {
            let mut rest = promql.as_str();
            let mut seen = 0;
            while let Some(at) = rest.find("floorwatch_") {
                let after = &rest[at..];
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                let selector = &after[end..];
                let narrowed = selector.starts_with("{site=~\"$site\"");
                // A variable query's own `site` needs no narrowing: it lists the sites.
                let lists_sites = promql.ends_with(", site)");
                assert!(
                    narrowed || lists_sites,
                    "{name}: {} not narrowed to the site in {promql}",
                    &after[..end]
                );
                seen += 1;
                rest = &after[end..];
            }
            assert!(seen > 0 || !promql.contains("floorwatch"), "{promql}");
        }
    }
}

// ---- every expression against a real Prometheus ------------------------------------------

/// One expression of a dashboard, with where it came from.
struct Expr {
    place: String,
    promql: String,
}

/// The selector and label of a `label_values(selector, label)` variable query.
fn label_values(query: &str) -> Option<(&str, &str)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim(), label.trim()))
}

/// Escapes a value for a regex matcher inside a PromQL string, as Grafana does for `=~`.
fn regex_escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push_str("\\\\");
        }
        out.push(c);
    }
    out
}

/// `promql` with Grafana's interval variables and the dashboard's variables replaced.
fn substitute(promql: &str, vars: &[(String, String)]) -> String {
    let mut s = promql.to_string();
    // Longest names first, so `$__range` does not eat the start of a longer name.
    let mut all: Vec<(String, String)> = INTERVALS
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .chain(vars.iter().map(|(k, v)| (format!("${k}"), v.clone())))
        .collect();
    all.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    for (k, v) in &all {
        s = s.replace(&format!("${{{}}}", &k[1..]), v).replace(k, v);
    }
    s
}

/// How long one query may take. Generous: with the whole suite running on two cores,
/// Prometheus has been seen to stall for 10 s; a query without an answer counts as failing
/// for this round and is asked again in the next.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// An instant query through `/api/v1/query`: the parsed response, or why there is none.
async fn instant(prom: &Prometheus, promql: &str) -> Result<Value, String> {
    let path = format!("/api/v1/query?query={}", servers::percent_encode(promql));
    let (status, _, body) = tokio::time::timeout(QUERY_TIMEOUT, sup::get(prom.addr(), &path))
        .await
        .map_err(|_| format!("no answer within {QUERY_TIMEOUT:?}"))?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("does not parse or run: {}", v["error"]));
    }
    Ok(v)
}

/// Runs an instant query: `Ok` if it returned at least one value that is not NaN.
async fn evaluate(prom: &Prometheus, promql: &str) -> Result<(), String> {
    if promql.contains('$') {
        return Err("a variable is left unreplaced".into());
    }
    let v = instant(prom, promql).await?;
    // NaN (e.g. a quantile of no observations) is no data on a panel.
    let has_value = v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["value"][1].as_str().is_some_and(|x| x != "NaN"));
    if has_value {
        Ok(())
    } else {
        Err(format!("no data: {}", v["data"]))
    }
}

/// The values of each query variable, in order (later variables may use earlier ones): for
/// each, the `All` value and its first value. A variable without values is put in
/// `failing`, and taken out once it has some.
async fn variable_values(
    prom: &Prometheus,
    name: &str,
    d: &Value,
    failing: &mut BTreeMap<String, String>,
) -> (Vec<(String, String)>, Vec<(String, String)>) {
    let mut all = Vec::new();
    let mut first = Vec::new();
    for v in variables(d).into_iter().filter(|v| v["type"] == "query") {
        let var = v["name"].as_str().unwrap_or_default().to_string();
        let query = v["query"].as_str().unwrap_or_default();
        let place = format!("{name} variable {var}: {query}");
        let Some((selector, label)) = label_values(query) else {
            failing.insert(place, ": not label_values(selector, label)".into());
            continue;
        };
        let body = match instant(prom, &substitute(selector, &all)).await {
            Ok(v) => v,
            Err(why) => {
                failing.insert(place.clone(), format!(": {why}"));
                Value::Null
            }
        };
        let mut values: Vec<String> = body["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["metric"][label].as_str().map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        let concrete = match values.first() {
            Some(x) => {
                failing.remove(&place);
                regex_escape(x)
            }
            None => {
                failing.insert(place, format!(": no values ({body})"));
                "no-value".into()
            }
        };
        let all_value = match v["includeAll"].as_bool() {
            Some(true) => v["allValue"].as_str().unwrap_or(".*").to_string(),
            _ => concrete.clone(),
        };
        all.push((var.clone(), all_value));
        first.push((var, concrete));
    }
    (all, first)
}

fn expressions(name: &str, d: &Value) -> Vec<Expr> {
    let mut out = Vec::new();
    for p in panels(d) {
        let title = p["title"].as_str().unwrap_or_default();
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(Expr {
                place: format!("{name} / {title} / {}", t["refId"].as_str().unwrap_or("?")),
                promql: t["expr"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    out
}

/// A floor that makes every family the dashboards read appear. Before Prometheus scrapes:
/// logins in two teams (one agent on break); a call answered in hotline-1, so that its ring
/// histogram exists when Prometheus first scrapes (`rate` cannot see a series' first
/// observation); a call ringing at `a1` 20 s ago, which is late (a `ring_answer`
/// violation, alerted to the webhook) as soon as the engine clock follows the wall clock;
/// shifts (one agent absent: a late login) and outbound calls with a sale.
fn floor_before(now: i64) -> String {
    json!([
        {"type":"agent.login","ts":now - 30_000,"seq":1,"agent":"a1","team":"hotline-1"},
        {"type":"agent.login","ts":now - 30_000,"seq":2,"agent":"a2","team":"hotline-1"},
        {"type":"agent.login","ts":now - 30_000,"seq":3,"agent":"a3","team":"hotline-1","state":"not_ready","reason":"break"},
        {"type":"agent.login","ts":now - 30_000,"seq":4,"agent":"a4","team":"hotline-2"},
        {"type":"call.queued","ts":now - 29_000,"seq":5,"call":"c0","queue":"sales"},
        {"type":"call.ringing","ts":now - 28_000,"seq":6,"call":"c0","agent":"a2"},
        {"type":"call.answered","ts":now - 27_000,"seq":7,"call":"c0","agent":"a2"},
        {"type":"call.ended","ts":now - 25_000,"seq":8,"call":"c0","agent":"a2"},
        {"type":"agent.state","ts":now - 25_000,"seq":9,"agent":"a2","state":"ready"},
        {"type":"call.queued","ts":now - 21_000,"seq":10,"call":"c1","queue":"sales"},
        {"type":"call.ringing","ts":now - 20_000,"seq":11,"call":"c1","agent":"a1"},
        // The schedule: a2 on shift and logged in, a5 on shift and absent (late, then a
        // late_login violation), both of hotline-1.
        {"type":"shift.scheduled","ts":now - 20_000,"seq":12,"shift":"s2","agent":"a2","team":"hotline-1","start":now - 19_000,"end":now + 3_600_000},
        {"type":"shift.scheduled","ts":now - 20_000,"seq":13,"shift":"s5","agent":"a5","team":"hotline-1","start":now - 19_000,"end":now + 3_600_000},
        // Outbound: a2 dials two numbers, one answers and buys.
        {"type":"call.dialing","ts":now - 18_000,"seq":14,"call":"o1","agent":"a2"},
        {"type":"call.answered","ts":now - 15_000,"seq":15,"call":"o1","agent":"a2"},
        {"type":"call.ended","ts":now - 12_000,"seq":16,"call":"o1","agent":"a2"},
        {"type":"call.disposition","ts":now - 11_000,"seq":17,"call":"o1","agent":"a2","code":"sale"},
        {"type":"call.dialing","ts":now - 10_000,"seq":18,"call":"o2","agent":"a2"},
        {"type":"call.ended","ts":now - 9_000,"seq":19,"call":"o2","agent":"a2"},
        {"type":"agent.state","ts":now - 9_000,"seq":20,"agent":"a2","state":"ready"},
    ])
    .to_string()
}

/// The seq of the last event of [`floor_before`].
const BEFORE: u64 = 20;

/// While Prometheus scrapes: queue calls answered after a wait (answer-wait and ring-time
/// observations), one abandoned, one left waiting; a wrap-up; a rejected and a duplicate
/// event. Sent one at a time, `step` apart, stamped with the wall clock.
async fn floor_live(source: &mut Source, clock: &Clock, step: Duration) {
    let events = [
        json!({"type":"call.queued","call":"c2","queue":"sales"}),
        json!({"type":"call.queued","call":"c3","queue":"sales"}),
        json!({"type":"call.ringing","call":"c2","agent":"a2"}),
        json!({"type":"call.ringing","call":"c3","agent":"a4"}),
        json!({"type":"call.answered","call":"c2","agent":"a2"}),
        json!({"type":"call.answered","call":"c3","agent":"a4"}),
        json!({"type":"call.queued","call":"c4","queue":"sales"}),
        json!({"type":"call.abandoned","call":"c4"}),
        json!({"type":"call.ended","call":"c3","agent":"a4"}),
        json!({"type":"agent.state","agent":"a4","state":"acw","call":"c3"}),
        json!({"type":"call.queued","call":"c5","queue":"sales"}),
        json!({"type":"agent.fly","agent":"a1"}),
    ];
    let mut seq = BEFORE;
    for mut e in events {
        seq += 1;
        e["seq"] = json!(seq);
        e["ts"] = json!(clock.now().ms());
        source.send(e.to_string()).await;
        tokio::time::sleep(step).await;
    }
    // A seq already applied: counted as a duplicate.
    let dup = json!({"type":"call.queued","seq":BEFORE,"call":"c9","queue":"sales","ts":clock.now().ms()});
    source.send(dup.to_string()).await;
}

#[tokio::test]
async fn every_expression_of_every_panel_returns_data_from_a_real_prometheus() {
    let began = Instant::now();
    let hook = WebhookReceiver::start().await;
    let mut config = sup::config();
    // Timestamps are near now: the engine clock follows the wall clock once the source idles.
    config.source.idle = 2_000;
    // Every team has a sales target (floorwatch_sales_target).
    config.rules.sales_target.insert("hotline-1".into(), 5);
    config.rules.sales_target.insert("hotline-2".into(), 3);
    config.alerts.webhook = Some(WebhookConfig {
        url: hook.url(),
        secret: None,
    });
    let d = sup::start(config).await;
    let started = Instant::now();
    let clock = Clock::system();
    let (mut source, _) = Source::connect_hello(d.local_addr(), "pbx").await;
    source.send(floor_before(clock.now().ms())).await;
    assert_eq!(source.until_ack().await.1, BEFORE);

    let prom = Prometheus::start(
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: floorwatch\n    \
             static_configs:\n      - targets: [\"{}\"]\n        labels:\n          \
             site: site-a\n",
            d.local_addr()
        ),
        &[],
    )
    .await;
    // The first scrape lands 5-6 s after start.
    let deadline = Instant::now() + Duration::from_secs(30);
    while evaluate(&prom, "up{job=\"floorwatch\"} == 1")
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped the daemon:\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let scraping = began.elapsed();
    // The late ring is a violation, alerted to the webhook (floorwatch_alert_deliveries_total).
    hook.wait_for(|_, _| true, Duration::from_secs(15))
        .await
        .expect("the ring_answer violation is alerted");
    floor_live(&mut source, &clock, Duration::from_millis(400)).await;

    // Every expression, with the variables at All and at their first value, until all return
    // data or the deadline passes: rates need a few scrapes, and the appraisal gauges are
    // refreshed once a minute, so the first refresh after the floor may come 60 s after start.
    let deadline = started + Duration::from_secs(120);
    // Each must return data at some moment, not all at the same one: a rate over 1m of a
    // burst is gone a minute later.
    let mut passed: BTreeSet<String> = BTreeSet::new();
    let mut failing: BTreeMap<String, String> = BTreeMap::new();
    loop {
        for name in DASHBOARDS {
            let dash = load(name);
            let (all, first) = variable_values(&prom, name, &dash, &mut failing).await;
            for e in expressions(name, &dash) {
                for (which, vars) in [("all", &all), ("first", &first)] {
                    let key = format!("{} [{which}]", e.place);
                    if passed.contains(&key) {
                        continue;
                    }
                    let promql = substitute(&e.promql, vars);
                    match evaluate(&prom, &promql).await {
                        Ok(_) => {
                            failing.remove(&key);
                            passed.insert(key);
                        }
                        Err(why) => {
                            failing.insert(key, format!("\n    {promql}\n    {why}"));
                        }
                    }
                }
            }
        }
        if failing.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        failing.is_empty(),
        "{} evaluations never returned data ({} did):\n{}",
        failing.len(),
        passed.len(),
        failing
            .iter()
            .map(|(k, why)| format!("{k}{why}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "{} evaluations returned data; first scrape {scraping:?}, all {:?}",
        passed.len(),
        began.elapsed()
    );
    drop(source);
    d.shutdown().await;
}
