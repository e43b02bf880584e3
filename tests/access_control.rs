//! Access control on the HTTP API, for each role, against the running server: who may
//! acknowledge, resolve and silence, with passwords (HTTP Basic) and bearer tokens, and who
//! is recorded as having done it.

mod support;

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{json, Value};
use support::{Mosquitto, Tidewatch, LX_STATION as STATIONS, LX_YELLOW_RULE as RULES};

#[test]
fn each_role_may_do_its_part_and_every_change_says_who() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let routes = "[[mqtt.route]]\nname = \"json\"\nfilter = \"sensors/#\"\nformat = \"json\"\n[alerting]\nmax_silence = \"2d\"\n";
    let engine = "workers = 1\nallowed_lateness = \"1m\"\nidle_source_timeout = \"1h\"";
    let mut tidewatch =
        Tidewatch::start_with_routes(&dir.path().join("app"), broker.port, STATIONS, RULES, engine, routes);
    tidewatch.add_user("zhang", "duty", "duty-pw");
    tidewatch.add_user("li", "analyst", "analyst-pw");
    tidewatch.add_user("wang", "viewer", "viewer-pw");
    let duty_token = tidewatch.token("zhang");
    assert!(duty_token.starts_with("tw_") && duty_token.len() == 67, "{duty_token}");

    let t = chrono::Utc::now().timestamp_millis() - 60_000;
    broker.publish_lines(
        "sensors/water",
        &[json!({"station": "LX", "quantity": "water_level", "value": 29.0, "time": t}).to_string()],
    );
    tidewatch.wait_until("an open alert", Duration::from_secs(30), |h| h["open_alerts"] == 1);
    let alerts: Vec<Value> = tidewatch.get("/api/alerts").json().unwrap();
    let id = alerts[0]["id"].as_i64().unwrap();

    let client = Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", tidewatch.http);
    let basic = |r: RequestBuilder, user: &str, pw: &str| r.basic_auth(user, Some(pw));
    let status = |r: RequestBuilder| r.send().unwrap().status().as_u16();
    let ack = || client.post(url(&format!("/api/alerts/{id}/ack"))).json(&json!({"note": "on my way"}));
    let ends = (chrono::Utc::now() + chrono::Duration::hours(6)).to_rfc3339();
    let silence = |body: Value| client.post(url("/api/silences")).json(&body);
    let station_silence = json!({"station": "LX", "ends_at": ends, "created_by": "x", "comment": "gauge works"});

    // Nobody, a wrong password, an unknown token: 401.
    assert_eq!(status(ack()), 401);
    assert_eq!(status(basic(ack(), "zhang", "wrong")), 401);
    assert_eq!(status(ack().bearer_auth("tw_0000")), 401);
    // A viewer reads, and may not change anything.
    assert_eq!(status(basic(ack(), "wang", "viewer-pw")), 403);
    assert_eq!(status(basic(silence(station_silence.clone()), "wang", "viewer-pw")), 403);
    // An analyst silences but does not take alerts on.
    assert_eq!(status(basic(ack(), "li", "analyst-pw")), 403);
    let made = basic(silence(station_silence.clone()), "li", "analyst-pw").send().unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().unwrap();
    assert_eq!(made["created_by"], "x (via li)", "who asked, and who did it");
    // A duty officer takes it on (with a token), and may not silence.
    assert_eq!(status(silence(station_silence.clone()).bearer_auth(&duty_token)), 403);
    let acked: Value = ack().bearer_auth(&duty_token).send().unwrap().json().unwrap();
    assert_eq!((&acked["state"], &acked["acknowledged"]["by"]), (&json!("acknowledged"), &json!("zhang")));
    let detail: Value = tidewatch.get(&format!("/api/alerts/{id}")).json().unwrap();
    let history = detail["history"].as_array().unwrap();
    let taken = history.iter().find(|e| e["happening"] == "acknowledge").unwrap();
    assert_eq!(taken["actor"], "zhang", "{history:#?}");

    // Silences are bounded: not longer than max_silence, and one that mutes everything is an
    // admin's, with a reason.
    let long = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let too_long = basic(silence(json!({"station": "LX", "ends_at": long, "created_by": "li"})), "li", "analyst-pw")
        .send()
        .unwrap();
    assert_eq!(too_long.status(), 400);
    assert!(too_long.text().unwrap().contains("at most 48 h"));
    let everything = json!({"rule": "*", "ends_at": ends, "created_by": "li"});
    assert_eq!(status(basic(silence(everything.clone()), "li", "analyst-pw")), 400);
    assert_eq!(status(basic(silence(everything), "admin", support::ADMIN_PASSWORD)), 400, "no reason given");
    let with_reason = json!({"region": "", "ends_at": ends, "created_by": "admin", "comment": "provincial drill"});
    assert_eq!(status(basic(silence(with_reason), "admin", support::ADMIN_PASSWORD)), 201);
    let huge = json!({"station": "LX", "ends_at": ends, "created_by": "li", "comment": "x".repeat(5000)});
    assert_eq!(status(basic(silence(huge), "li", "analyst-pw")), 400);

    // `users list` shows who may do what; the admin was made at the first start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidewatch"))
        .args(["users", "--config"])
        .arg(tidewatch.dir.join("tidewatch.toml"))
        .arg("list")
        .output()
        .unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        list.lines().collect::<Vec<_>>(),
        ["admin\tadmin\t0 token(s)", "li\tanalyst\t0 token(s)", "wang\tviewer\t0 token(s)", "zhang\tduty\t1 token(s)"]
    );
    assert!(tidewatch.log().contains("created the first user, admin"));
    assert!(!tidewatch.log().contains(support::ADMIN_PASSWORD), "a password from the environment is not printed");
    tidewatch.stop();
}

#[test]
fn reads_can_need_a_login_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let routes = "[[mqtt.route]]\nname = \"json\"\nfilter = \"sensors/#\"\nformat = \"json\"\n";
    let engine = "workers = 1";
    let mut tidewatch =
        Tidewatch::start_with_routes(&dir.path().join("app"), broker.port, STATIONS, RULES, engine, routes);
    // The support config has an [http] table: open_reads goes in through a second config.
    let config = tidewatch.dir.join("tidewatch.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace("[http]\n", "[http]\nopen_reads = false\n");
    std::fs::write(&config, text).unwrap();
    tidewatch.stop();
    tidewatch.respawn();
    assert_eq!(tidewatch.get("/api/alerts").status(), 401);
    assert_eq!(tidewatch.get("/healthz").status(), 200, "probes stay open");
    tidewatch.add_user("wang", "viewer", "viewer-pw");
    let client = Client::new();
    let response = client
        .get(format!("http://127.0.0.1:{}/api/alerts", tidewatch.http))
        .basic_auth("wang", Some("viewer-pw"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    tidewatch.stop();
}

#[test]
fn users_and_tokens_are_managed_over_the_api_and_a_revoked_or_expired_token_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let config = "stations = \"stations.toml\"\nrules = [\"rules\"]\n[[source]]\nkind = \"file\"\npath = \"empty.jsonl\"\nformat = \"jsonl\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n[alerting]\nstore = \"sqlite://alerts.db\"\n";
    let t = Tidewatch::start_config(dir.path(), STATIONS, RULES, config, |_| true);
    let client = Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", t.http);
    let admin = |r: RequestBuilder| r.basic_auth("admin", Some(support::ADMIN_PASSWORD));
    let silences = |r: RequestBuilder| r.send().unwrap().status().as_u16();

    // An admin adds an analyst and gives the analyst's machine a token that expires.
    let put = admin(client.put(url("/api/users/li"))).json(&json!({"role": "analyst", "password": "analyst-password"}));
    let user: Value = put.send().unwrap().json().unwrap();
    assert_eq!(user["role"], "analyst");
    let made = admin(client.post(url("/api/users/li/tokens"))).json(&json!({"label": "gateway", "expires_in": "2s"}));
    let made: Value = made.send().unwrap().json().unwrap();
    let (token, token_id) = (made["token"].as_str().unwrap().to_owned(), made["id"].as_str().unwrap().to_owned());
    let listed: Value = admin(client.get(url("/api/users/li/tokens"))).send().unwrap().json().unwrap();
    assert_eq!(listed[0]["id"], token_id.as_str());
    assert_eq!(listed[0]["label"], "gateway");
    assert!(!listed.to_string().contains(&token), "a listing never shows the token");
    let by_token = || client.get(url("/api/users")).bearer_auth(&token);
    assert_eq!(silences(by_token()), 403, "an analyst's token does not manage users");
    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let silence = json!({"station": "LX", "ends_at": ends, "created_by": "li", "comment": "works"});
    assert_eq!(silences(client.post(url("/api/silences")).bearer_auth(&token).json(&silence)), 201);
    // After its two seconds it stops.
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(silences(client.post(url("/api/silences")).bearer_auth(&token).json(&silence)), 401, "expired");

    // A token without expiry works until it is revoked, then not at all.
    let made: Value = admin(client.post(url("/api/users/li/tokens")))
        .json(&json!({"label": "laptop"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = made["token"].as_str().unwrap().to_owned();
    assert_eq!(silences(client.get(url("/api/silences")).bearer_auth(&token)), 200);
    let revoke = admin(client.delete(url(&format!("/api/tokens/{}", made["id"].as_str().unwrap()))));
    assert_eq!(silences(revoke), 204);
    assert_eq!(silences(client.post(url("/api/silences")).bearer_auth(&token).json(&silence)), 401, "revoked");

    // A changed password takes effect at once, though the old one was just used.
    let by_password = |pw: &str| client.post(url("/api/silences")).basic_auth("li", Some(pw)).json(&silence);
    assert_eq!(silences(by_password("analyst-password")), 201);
    let put = admin(client.put(url("/api/users/li"))).json(&json!({"role": "analyst", "password": "another-password"}));
    assert_eq!(silences(put), 200);
    assert_eq!(silences(by_password("analyst-password")), 401);
    assert_eq!(silences(by_password("another-password")), 201);
    // Too short a password is refused.
    let put = admin(client.put(url("/api/users/li"))).json(&json!({"role": "analyst", "password": "short"}));
    assert_eq!(silences(put), 400);
}

#[test]
fn a_console_session_is_a_cookie_that_logs_out_for_good() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let config = "stations = \"stations.toml\"\nrules = [\"rules\"]\n[[source]]\nkind = \"file\"\npath = \"empty.jsonl\"\nformat = \"jsonl\"\n[http]\nlisten = \"127.0.0.1:{http}\"\nopen_reads = false\n[alerting]\nstore = \"sqlite://alerts.db\"\n";
    let t = Tidewatch::start_config(dir.path(), STATIONS, RULES, config, |_| true);
    let client = Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", t.http);
    let status = |r: RequestBuilder| r.send().unwrap().status().as_u16();

    let wrong = client.post(url("/api/session")).json(&json!({"name": "admin", "password": "guess"}));
    assert_eq!(status(wrong), 401);
    let login = client.post(url("/api/session")).json(&json!({"name": "admin", "password": support::ADMIN_PASSWORD}));
    let answer = login.send().unwrap();
    let set_cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let session: Value = answer.json().unwrap();
    assert_eq!(session["role"], "admin");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    // The cookie is a login: reads (closed here) and changes, recorded as the user.
    assert_eq!(status(client.get(url("/api/alerts"))), 401);
    assert_eq!(status(client.get(url("/api/alerts")).header("cookie", &cookie)), 200);
    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let silence = json!({"station": "LX", "ends_at": ends, "created_by": "", "comment": "from the console"});
    let made: Value =
        client.post(url("/api/silences")).header("cookie", &cookie).json(&silence).send().unwrap().json().unwrap();
    assert_eq!(made["created_by"], "admin", "{made}");
    // An admin sees the session among the user's tokens.
    let tokens: Value =
        client.get(url("/api/users/admin/tokens")).header("cookie", &cookie).send().unwrap().json().unwrap();
    assert!(tokens.as_array().unwrap().iter().any(|t| t["label"] == "console session"), "{tokens}");

    // Logging out ends it for good, even for a copy of the cookie kept elsewhere.
    let logout = client.delete(url("/api/session")).header("cookie", &cookie).send().unwrap();
    assert_eq!(logout.status().as_u16(), 204);
    assert!(logout.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(status(client.get(url("/api/alerts")).header("cookie", &cookie)), 401);
}

#[test]
fn guessing_passwords_is_slowed_down_per_address_and_a_token_still_works() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let config = "stations = \"stations.toml\"\nrules = [\"rules\"]\n[[source]]\nkind = \"file\"\npath = \"empty.jsonl\"\nformat = \"jsonl\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n[alerting]\nstore = \"sqlite://alerts.db\"\n";
    let t = Tidewatch::start_config(dir.path(), STATIONS, RULES, config, |_| true);
    let token = t.token("admin");
    let client = Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", t.http);
    let users = |password: &str| client.get(url("/api/users")).basic_auth("admin", Some(password)).send().unwrap();

    // Five wrong passwords are answered as such; then even the right one waits.
    for i in 0..5 {
        assert_eq!(users(&format!("guess-{i}")).status().as_u16(), 401);
    }
    let held = users(support::ADMIN_PASSWORD);
    assert_eq!(held.status().as_u16(), 429);
    let retry_after: u64 = held.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // The console login is the same door.
    let session = client.post(url("/api/session")).json(&json!({"name": "admin", "password": support::ADMIN_PASSWORD}));
    assert_eq!(session.send().unwrap().status().as_u16(), 429);
    // A token is not a password: it goes on working.
    assert_eq!(client.get(url("/api/users")).bearer_auth(&token).send().unwrap().status().as_u16(), 200);

    // After the wait the right password gets in and the address starts afresh.
    std::thread::sleep(Duration::from_millis(retry_after * 1000 + 200));
    assert_eq!(users(support::ADMIN_PASSWORD).status().as_u16(), 200);
    assert_eq!(users("guess-again").status().as_u16(), 401);

    let metrics = client.get(url("/metrics")).send().unwrap().text().unwrap();
    for (outcome, at_least) in [("failed", 6), ("throttled", 2), ("ok", 1)] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("tidewatch_http_logins_total{{outcome=\"{outcome}\"}}")))
            .unwrap_or_else(|| panic!("no {outcome} count in /metrics"));
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= at_least as f64, "{line}");
    }
}
