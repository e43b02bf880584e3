//! The OpenAPI description says what the server really answers: every operation's probes
//! get a status the description lists, each listed status is answered by some probe, and
//! every error body is JSON with a reason.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};
use support::{Mosquitto, Tidewatch, LX_STATION as STATIONS, LX_YELLOW_RULE as RULES};

/// Who a probe logs in as.
#[derive(Clone, Copy)]
enum As {
    Admin,
    Viewer,
    Nobody,
    /// A password login from an address that got too many wrong (429).
    Guesser,
}

/// A request: method, path, content type, body and login.
struct Probe {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Option<String>,
    login: As,
    cookie: Option<String>,
    /// Done just before the request is sent.
    before: Option<Box<dyn Fn()>>,
}

impl Probe {
    fn as_(mut self, login: As) -> Probe {
        self.login = login;
        self
    }

    fn after(mut self, before: impl Fn() + 'static) -> Probe {
        self.before = Some(Box::new(before));
        self
    }
}

fn probe(method: Method, path: &str) -> Probe {
    Probe {
        method,
        path: path.to_owned(),
        content_type: None,
        body: None,
        login: As::Admin,
        cookie: None,
        before: None,
    }
}

fn json_probe(method: Method, path: &str, body: &str) -> Probe {
    Probe { content_type: Some("application/json"), body: Some(body.to_owned()), ..probe(method, path) }
}

fn text_probe(method: Method, path: &str, body: &str) -> Probe {
    Probe { content_type: Some("text/plain"), body: Some(body.to_owned()), ..probe(method, path) }
}

#[test]
fn every_status_the_server_answers_is_in_the_description_and_every_error_is_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let engine = "workers = 1\nallowed_lateness = \"1m\"\nidle_source_timeout = \"1h\"";
    let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, STATIONS, RULES, engine);
    let t = chrono::Utc::now().timestamp_millis() - 60_000;
    broker.publish_lines(
        "sensors/water",
        &[json!({"station": "LX", "quantity": "water_level", "value": 29.0, "time": t}).to_string()],
    );
    tidewatch.wait_until("an open alert", Duration::from_secs(30), |h| h["open_alerts"] == 1);
    let alerts: Vec<Value> = tidewatch.get("/api/alerts").json().unwrap();
    let id = alerts[0]["id"].as_i64().unwrap();
    tidewatch.add_user("watcher", "viewer", "watcher-password");
    let client = Client::new();
    let base = format!("http://127.0.0.1:{}", tidewatch.http);
    let send = |p: &Probe| {
        let mut request = client.request(p.method.clone(), format!("{base}{}", p.path));
        request = match p.login {
            As::Admin => request.basic_auth("admin", Some(support::ADMIN_PASSWORD)),
            As::Viewer => request.basic_auth("watcher", Some("watcher-password")),
            As::Nobody => request,
            As::Guesser => request.basic_auth("guesser", Some("wrong")),
        };
        if let Some(cookie) = &p.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(ct) = p.content_type {
            request = request.header("content-type", ct);
        }
        if let Some(body) = &p.body {
            request = request.body(body.clone());
        }
        request.send().unwrap()
    };
    // Guessing: fifteen wrong passwords for one name make this address wait (a quarter of an
    // hour) before that name's next password is checked; other names are not held up.
    for _ in 0..15 {
        let status =
            client.get(format!("{base}/api/users")).basic_auth("guesser", Some("wrong")).send().unwrap().status();
        assert!(matches!(status.as_u16(), 401 | 429), "{status}");
    }
    // A console session to end.
    let login = json!({"name": "admin", "password": support::ADMIN_PASSWORD});
    let session = client.post(format!("{base}/api/session")).json(&login).send().unwrap();
    let cookie = session.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    // A token to revoke.
    let made: Value = tidewatch.post("/api/users/admin/tokens", &json!({"label": "to revoke"})).json().unwrap();
    let token_id = made["id"].as_str().unwrap().to_owned();
    // A silence to delete.
    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let silence = format!(r#"{{"station": "LX", "ends_at": "{ends}", "created_by": "张伟"}}"#);
    let rule_file = dir.path().join("app/rules/test.toml");

    // (operation as in the description, probes in order: later ones may rely on earlier ones)
    let mut operations: Vec<((&str, &str), Vec<Probe>)> = vec![
        (
            ("get", "/api/alerts"),
            vec![
                probe(Method::GET, "/api/alerts"),
                probe(Method::GET, "/api/alerts?state=nope"),
                probe(Method::GET, "/api/alerts?colour=red"),
                probe(Method::GET, "/api/alerts?after=nonsense"),
            ],
        ),
        (
            ("get", "/api/alerts/{id}"),
            vec![
                probe(Method::GET, &format!("/api/alerts/{id}")),
                probe(Method::GET, "/api/alerts/abc"),
                probe(Method::GET, "/api/alerts/99999"),
            ],
        ),
        (
            ("post", "/api/alerts/{id}/ack"),
            vec![
                json_probe(Method::POST, &format!("/api/alerts/{id}/ack"), r#"{"by": "张伟"}"#).as_(As::Nobody),
                json_probe(Method::POST, &format!("/api/alerts/{id}/ack"), r#"{"by": "张伟"}"#).as_(As::Viewer),
                text_probe(Method::POST, &format!("/api/alerts/{id}/ack"), r#"{"by": "张伟"}"#),
                json_probe(
                    Method::POST,
                    &format!("/api/alerts/{id}/ack"),
                    &format!(r#"{{"note": "{}"}}"#, "x".repeat(70_000)),
                ),
                json_probe(Method::POST, &format!("/api/alerts/{id}/ack"), r#"{"by": "张伟""#),
                json_probe(Method::POST, &format!("/api/alerts/{id}/ack"), r#"{"who": "张伟"}"#),
                json_probe(Method::POST, &format!("/api/alerts/{id}/ack"), r#"{"by": " "}"#),
                json_probe(Method::POST, "/api/alerts/abc/ack", r#"{"by": "张伟"}"#),
                json_probe(Method::POST, "/api/alerts/99999/ack", r#"{"by": "张伟"}"#),
                json_probe(Method::POST, &format!("/api/alerts/{id}/ack"), r#"{"by": "张伟"}"#),
                json_probe(Method::POST, &format!("/api/alerts/{id}/ack"), r#"{"by": "李娜"}"#),
            ],
        ),
        (
            ("post", "/api/alerts/{id}/resolve"),
            vec![
                json_probe(Method::POST, &format!("/api/alerts/{id}/resolve"), r#"{"by": "张伟"}"#).as_(As::Nobody),
                json_probe(Method::POST, &format!("/api/alerts/{id}/resolve"), r#"{"by": "张伟"}"#).as_(As::Viewer),
                text_probe(Method::POST, &format!("/api/alerts/{id}/resolve"), r#"{"by": "张伟"}"#),
                json_probe(Method::POST, &format!("/api/alerts/{id}/resolve"), &"x".repeat(70_000)),
                json_probe(Method::POST, &format!("/api/alerts/{id}/resolve"), "not json"),
                json_probe(Method::POST, &format!("/api/alerts/{id}/resolve"), r#"{"by": 7}"#),
                json_probe(Method::POST, "/api/alerts/abc/resolve", r#"{"by": "张伟"}"#),
                json_probe(Method::POST, "/api/alerts/99999/resolve", r#"{"by": "张伟"}"#),
                json_probe(Method::POST, &format!("/api/alerts/{id}/resolve"), r#"{"by": "张伟"}"#),
            ],
        ),
        (("get", "/api/silences"), vec![probe(Method::GET, "/api/silences")]),
        (("get", "/api/stations"), vec![probe(Method::GET, "/api/stations").as_(As::Nobody)]),
        (("get", "/api/rules"), vec![probe(Method::GET, "/api/rules").as_(As::Nobody)]),
        (
            ("post", "/api/rules/reload"),
            vec![
                probe(Method::POST, "/api/rules/reload").as_(As::Nobody),
                probe(Method::POST, "/api/rules/reload").as_(As::Viewer),
                probe(Method::POST, "/api/rules/reload"),
                probe(Method::POST, "/api/rules/reload").after({
                    let file = rule_file.clone();
                    move || std::fs::write(&file, "[[rule]]\nid = \"broken\"\n").unwrap()
                }),
                probe(Method::POST, "/api/rules/reload").after({
                    let file = rule_file.clone();
                    move || std::fs::write(&file, RULES).unwrap()
                }),
            ],
        ),
        (
            ("post", "/api/silences"),
            vec![
                json_probe(Method::POST, "/api/silences", &silence).as_(As::Nobody),
                json_probe(Method::POST, "/api/silences", &silence).as_(As::Viewer),
                text_probe(Method::POST, "/api/silences", &silence),
                json_probe(Method::POST, "/api/silences", &"x".repeat(70_000)),
                json_probe(Method::POST, "/api/silences", "{"),
                json_probe(Method::POST, "/api/silences", r#"{"station": "LX", "created_by": "x"}"#),
                json_probe(Method::POST, "/api/silences", &format!(r#"{{"ends_at": "{ends}", "created_by": "x"}}"#)),
                json_probe(Method::POST, "/api/silences", &silence),
            ],
        ),
        (
            ("post", "/api/input/complete"),
            vec![
                probe(Method::POST, "/api/input/complete").as_(As::Nobody),
                probe(Method::POST, "/api/input/complete").as_(As::Viewer),
                probe(Method::POST, "/api/input/complete"),
            ],
        ),
        (
            ("post", "/api/session"),
            vec![
                text_probe(Method::POST, "/api/session", &login.to_string()).as_(As::Nobody),
                json_probe(Method::POST, "/api/session", &"x".repeat(70_000)).as_(As::Nobody),
                json_probe(Method::POST, "/api/session", "{").as_(As::Nobody),
                json_probe(Method::POST, "/api/session", r#"{"name": "admin"}"#).as_(As::Nobody),
                json_probe(Method::POST, "/api/session", r#"{"name": "admin", "password": "wrong"}"#).as_(As::Nobody),
                json_probe(Method::POST, "/api/session", &login.to_string()).as_(As::Nobody),
                json_probe(Method::POST, "/api/session", r#"{"name": "guesser", "password": "wrong"}"#).as_(As::Nobody),
            ],
        ),
        (
            ("get", "/api/session"),
            vec![
                probe(Method::GET, "/api/session").as_(As::Nobody),
                Probe {
                    cookie: Some("tidewatch_session=tw_0000".into()),
                    ..probe(Method::GET, "/api/session").as_(As::Nobody)
                },
                probe(Method::GET, "/api/session"),
                Probe { cookie: Some(cookie.clone()), ..probe(Method::GET, "/api/session").as_(As::Nobody) },
                probe(Method::GET, "/api/session").as_(As::Guesser),
            ],
        ),
        // A stream: its answer is checked by its headers (the body does not end).
        (("get", "/api/events"), vec![probe(Method::GET, "/api/events").as_(As::Nobody)]),
        (
            ("delete", "/api/session"),
            vec![
                probe(Method::DELETE, "/api/session").as_(As::Nobody),
                Probe { cookie: Some(cookie.clone()), ..probe(Method::DELETE, "/api/session").as_(As::Nobody) },
            ],
        ),
        (
            ("get", "/api/users"),
            vec![
                probe(Method::GET, "/api/users").as_(As::Nobody),
                probe(Method::GET, "/api/users").as_(As::Viewer),
                probe(Method::GET, "/api/users"),
            ],
        ),
        (
            ("put", "/api/users/{name}"),
            vec![
                json_probe(Method::PUT, "/api/users/ops", r#"{"role": "duty"}"#).as_(As::Nobody),
                json_probe(Method::PUT, "/api/users/ops", r#"{"role": "duty"}"#).as_(As::Viewer),
                text_probe(Method::PUT, "/api/users/ops", r#"{"role": "duty"}"#),
                json_probe(Method::PUT, "/api/users/ops", &"x".repeat(70_000)),
                json_probe(Method::PUT, "/api/users/ops", r#"{"role": "boss"}"#),
                json_probe(Method::PUT, "/api/users/ops", r#"{"role": 7}"#),
                json_probe(Method::PUT, "/api/users/ops", r#"{"role": "duty", "password": "a long password"}"#),
            ],
        ),
        (
            ("post", "/api/users/{name}/tokens"),
            vec![
                json_probe(Method::POST, "/api/users/admin/tokens", "{}").as_(As::Nobody),
                json_probe(Method::POST, "/api/users/admin/tokens", "{}").as_(As::Viewer),
                text_probe(Method::POST, "/api/users/admin/tokens", "{}"),
                json_probe(Method::POST, "/api/users/admin/tokens", &"x".repeat(70_000)),
                json_probe(Method::POST, "/api/users/admin/tokens", r#"{"expires_in": "soon"}"#),
                json_probe(Method::POST, "/api/users/admin/tokens", r#"{"label": 7}"#),
                json_probe(Method::POST, "/api/users/nobody/tokens", "{}"),
                json_probe(Method::POST, "/api/users/admin/tokens", r#"{"label": "probe", "expires_in": "1d"}"#),
            ],
        ),
        (
            ("get", "/api/users/{name}/tokens"),
            vec![
                probe(Method::GET, "/api/users/admin/tokens").as_(As::Nobody),
                probe(Method::GET, "/api/users/admin/tokens").as_(As::Viewer),
                probe(Method::GET, "/api/users/nobody/tokens"),
                probe(Method::GET, "/api/users/admin/tokens"),
            ],
        ),
        (
            ("delete", "/api/tokens/{id}"),
            vec![
                probe(Method::DELETE, &format!("/api/tokens/{token_id}")).as_(As::Nobody),
                probe(Method::DELETE, &format!("/api/tokens/{token_id}")).as_(As::Viewer),
                probe(Method::DELETE, "/api/tokens/0000000000000000"),
                probe(Method::DELETE, &format!("/api/tokens/{token_id}")),
            ],
        ),
        (
            ("delete", "/api/silences/{id}"),
            vec![
                probe(Method::DELETE, "/api/silences/1").as_(As::Nobody),
                probe(Method::DELETE, "/api/silences/1").as_(As::Viewer),
                probe(Method::DELETE, "/api/silences/abc"),
                probe(Method::DELETE, "/api/silences/99999"),
                probe(Method::DELETE, "/api/silences/1"),
            ],
        ),
    ];
    // Every operation that takes a password answers a throttled guesser 429.
    for (_, probes) in operations.iter_mut().filter(|((_, path), _)| *path != "/api/session") {
        if probes.iter().any(|p| matches!(p.login, As::Nobody)) {
            let throttled = probe(probes[0].method.clone(), &probes[0].path).as_(As::Guesser);
            probes.push(throttled);
        }
    }

    let spec: Value = tidewatch.get("/api/openapi.json").json().unwrap();
    let mut described: BTreeSet<(String, String)> = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            described.insert((method.clone(), path.clone()));
        }
    }
    let probed: BTreeSet<(String, String)> =
        operations.iter().map(|((m, p), _)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(described, probed, "every described operation is probed, and only those");

    let mut problems = Vec::new();
    for ((method, path), probes) in &operations {
        let listed: BTreeMap<u16, Value> = spec["paths"][*path][*method]["responses"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(status, r)| (status.parse().unwrap(), r.clone()))
            .collect();
        let mut answered = BTreeSet::new();
        for p in probes {
            if let Some(before) = &p.before {
                before();
            }
            let response = send(p);
            let status = response.status().as_u16();
            answered.insert(status);
            let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            if content_type.as_deref() == Some("text/event-stream") {
                let described = &spec["paths"][*path][*method]["responses"][status.to_string()]["content"];
                if described.get("text/event-stream").is_none() {
                    problems.push(format!("{method} {} answered a stream, not described as one: {described}", p.path));
                }
                continue;
            }
            let text = response.text().unwrap();
            if !listed.contains_key(&status) {
                problems.push(format!("{method} {} answered {status}, not in the description: {text}", p.path));
            }
            if status >= 400 {
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if !(body["error"].is_string() && body["reason"].is_string()) {
                    problems.push(format!("{method} {} answered {status} without a JSON reason: {text}", p.path));
                }
            }
        }
        // 503 needs a store that went away; 409 on a reload needs built-in rules (the demo's:
        // tests/demo.rs asks for it).
        let unprobed = |s: u16| s == 503 || (s == 409 && *path == "/api/rules/reload");
        for status in listed.keys().filter(|s| !unprobed(**s)) {
            if !answered.contains(status) {
                problems.push(format!("{method} {path}: {status} is described but no probe got it"));
            }
        }
    }
    // Outside the described operations, errors are JSON too.
    for (method, path, status) in
        [(Method::GET, "/api/nothing", 404), (Method::DELETE, "/api/alerts", 405), (Method::PUT, "/api/silences", 405)]
    {
        let response = send(&probe(method.clone(), path));
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let body: Value = response.json().unwrap();
        assert!(body["reason"].is_string(), "{method} {path}: {body}");
    }
    assert!(problems.is_empty(), "{problems:#?}");
    tidewatch.stop();
}
