//! The web console in a real browser: Chromium driven through ChromeDriver (WebDriver)
//! against the running binary, a real Mosquitto and the alert store — logging in, an alert
//! arriving while the page is open, acknowledging it, what each role is offered, links from
//! notifications, silences.

mod support;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use support::{free_port, Mosquitto, Tidewatch, LX_STATION, LX_YELLOW_RULE};

/// A headless Chromium of its own, through a ChromeDriver of its own on a free port. Each step
/// runs on the browser's runtime, so the test around it can use blocking clients.
struct Browser {
    client: Option<Client>,
    runtime: tokio::runtime::Runtime,
    driver: Child,
}

const WAIT: Duration = Duration::from_secs(15);

impl Browser {
    fn start() -> Browser {
        Browser::start_in("en-US")
    }

    /// A browser whose preferred language is `language` (`zh-CN`, `en-US`).
    fn start_in(language: &str) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", format!("--lang={language}")],
                "prefs": { "intl.accept_languages": language },
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        let client = runtime
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a Chromium session");
        Browser { client: Some(client), runtime, driver }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, url: &str) {
        self.runtime.block_on(self.client().goto(url)).unwrap();
    }

    fn title(&self) -> String {
        self.runtime.block_on(self.client().title()).unwrap()
    }

    fn url(&self) -> String {
        self.runtime.block_on(self.client().current_url()).unwrap().to_string()
    }

    /// Types into the element `css` (after clearing it).
    fn fill(&self, css: &str, text: &str) {
        self.act(css, |element| async move {
            element.clear().await?;
            element.send_keys(text).await
        });
    }

    fn click(&self, css: &str) {
        self.act(css, |element| async move { element.click().await });
    }

    /// Does `action` to the element `css` once it is there, again if the page replaced the
    /// element meanwhile (lists are redrawn when an alert changes).
    fn act<F: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>>(
        &self,
        css: &str,
        action: impl Fn(fantoccini::elements::Element) -> F,
    ) {
        let deadline = Instant::now() + WAIT;
        loop {
            let done = self.runtime.block_on(async {
                let element = self.client().find(Locator::Css(css)).await?;
                action(element).await
            });
            match done {
                Ok(()) => return,
                Err(e) => assert!(Instant::now() < deadline, "{css}: {e}; the page's errors: {:?}", self.errors()),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many elements match `css` now.
    fn count(&self, css: &str) -> usize {
        self.runtime.block_on(self.client().find_all(Locator::Css(css))).unwrap().len()
    }

    /// Whether the element `css` is shown.
    fn shown(&self, css: &str) -> bool {
        self.runtime.block_on(async {
            match self.client().find(Locator::Css(css)).await {
                Ok(e) => e.is_displayed().await.unwrap_or(false),
                Err(_) => false,
            }
        })
    }

    /// Waits until the text of `css` satisfies `ok`, and returns it.
    fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        loop {
            let text = self.runtime.block_on(async {
                let element = self.client().find(Locator::Css(css)).await.ok()?;
                element.text().await.ok()
            });
            if let Some(text) = text {
                if ok(&text) {
                    return text;
                }
                last = text;
            }
            assert!(Instant::now() < deadline, "{css}: still {last:?}; the page's errors: {:?}", self.errors());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the page's error lines say.
    fn errors(&self) -> Vec<String> {
        self.runtime.block_on(async {
            let mut said = Vec::new();
            for element in self.client().find_all(Locator::Css(".error")).await.unwrap_or_default() {
                said.extend(element.text().await.ok().filter(|t| !t.is_empty()));
            }
            said
        })
    }

    /// Waits until `css` matches something shown.
    fn wait_shown(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.shown(css) {
            assert!(Instant::now() < deadline, "{css} not shown; the page's errors: {:?}", self.errors());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_in(&self, name: &str, password: &str) {
        self.fill("#login-name", name);
        self.fill("#login-password", password);
        self.click("#login-submit");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn setup() -> (tempfile::TempDir, Mosquitto, Tidewatch) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let engine = "workers = 1\nallowed_lateness = \"1m\"\nidle_source_timeout = \"1h\"";
    let tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, LX_STATION, LX_YELLOW_RULE, engine);
    tidewatch.add_user("zhang", "duty", "duty-pw");
    tidewatch.add_user("wang", "viewer", "viewer-pw");
    tidewatch.add_user("li", "analyst", "analyst-pw");
    (dir, broker, tidewatch)
}

fn publish_level(broker: &Mosquitto, value: f64) {
    let t = chrono::Utc::now().timestamp_millis() - 60_000;
    let reading = json!({"station": "LX", "quantity": "water_level", "value": value, "time": t});
    broker.publish_lines("sensors/water", &[reading.to_string()]);
}

#[test]
fn a_duty_officer_sees_an_alert_arrive_and_acknowledges_it() {
    let (_dir, broker, mut tidewatch) = setup();
    let browser = Browser::start();
    let base = format!("http://127.0.0.1:{}", tidewatch.http);

    // A browser at the root is sent to the console, which asks for a login.
    browser.goto(&format!("{base}/"));
    assert!(browser.url().ends_with("/console"), "{}", browser.url());
    browser.wait_shown("#login-form");
    assert!(!browser.shown("#alert-table"));

    // A wrong password is refused, and says so.
    browser.log_in("zhang", "wrong");
    browser.wait_text("#login-error", |t| t.contains("wrong user or password"));
    assert!(browser.shown("#login-form"));

    browser.log_in("zhang", "duty-pw");
    browser.wait_text("#who-name", |t| t == "zhang");
    assert_eq!(browser.wait_text("#who-role", |t| !t.is_empty()), "duty");
    browser.wait_shown("#no-alerts");
    // The page follows the event stream before anything happens.
    browser.wait_shown("#live.on");

    // A reading crosses the warning level: the alert shows without the page being reloaded.
    publish_level(&broker, 29.0);
    browser.wait_shown("#alert-rows tr[data-severity='yellow'][data-state='firing']");
    let alerts: Vec<Value> = tidewatch.get("/api/alerts").json().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let id = alerts[0]["id"].as_i64().unwrap();
    let row = format!("#alert-rows tr[data-id='{id}']");
    let text = browser.wait_text(&row, |t| t.contains("firing"));
    assert!(text.contains("(LX)") && text.contains("29 > 28 m"), "{text}");
    assert_eq!(browser.count(&format!("{row} .level.yellow")), 1);
    // On the map, the station takes the alert's colour.
    assert_eq!(browser.count("#map-stations circle[data-station='LX'][data-severity='yellow'].firing"), 1);

    // The tab's title counts the alerts nobody has taken on.
    assert_eq!(browser.title(), "(1) Tidewatch");
    // Acknowledged from its row: the row and the store say who.
    browser.click(&format!("{row} button.ack"));
    browser.wait_text(&format!("{row} td.state"), |t| t == "acknowledged by zhang");
    let stored: Value = tidewatch.get(&format!("/api/alerts/{id}")).json().unwrap();
    assert_eq!(stored["state"], "acknowledged");
    assert_eq!(stored["acknowledged"]["by"], "zhang");
    assert_eq!(browser.count(&format!("{row} button.ack")), 0, "acknowledged twice?");
    assert_eq!(browser.title(), "Tidewatch");

    // Its detail: the history shows the acknowledgement.
    browser.click(&format!("{row} td:nth-child(2)"));
    browser.wait_shown("#detail");
    browser.wait_text("#detail", |t| t.contains("acknowledge") && t.contains("by zhang"));

    // A resolve from the detail, with a note.
    browser.fill("#detail-note", "gauge checked on site");
    browser.click("#detail button.resolve");
    // It leaves the list of open alerts, and the map.
    browser.wait_shown("#no-alerts");
    assert_eq!(browser.count("#map-stations circle[data-station='LX']:not([data-severity])"), 1);
    let stored: Value = tidewatch.get(&format!("/api/alerts/{id}")).json().unwrap();
    assert_eq!(stored["state"], "resolved", "{stored}");
    let note = stored["history"].as_array().unwrap().iter().find(|e| e["happening"] == "manual_resolve");
    assert_eq!(note.unwrap()["note"], "gauge checked on site", "{stored}");

    // Logging out ends the session: the page asks for a login again, and the API refuses it.
    browser.click("#logout");
    browser.wait_shown("#login-form");
    browser.goto(&format!("{base}/api/session"));
    browser.wait_text("body", |t| t.contains("unauthorized"));
    tidewatch.stop();
}

#[test]
fn a_viewer_is_offered_no_actions_and_links_open_the_alert() {
    let (_dir, broker, mut tidewatch) = setup();
    publish_level(&broker, 29.5);
    tidewatch.wait_until("an open alert", WAIT, |h| h["open_alerts"] == 1);
    let alerts: Vec<Value> = tidewatch.get("/api/alerts").json().unwrap();
    let id = alerts[0]["id"].as_i64().unwrap();
    let base = format!("http://127.0.0.1:{}", tidewatch.http);

    // The link a notification carries opens that alert in the console.
    let browser = Browser::start();
    browser.goto(&format!("{base}/alerts/{id}"));
    browser.log_in("wang", "viewer-pw");
    browser.wait_text("#who-role", |t| t == "viewer");
    browser.wait_text("#detail", |t| t.contains(&format!("Alert\n{id}")) || t.contains(&format!("Alert {id}")));
    assert!(browser.url().ends_with(&format!("/console#alert={id}")), "{}", browser.url());
    // Seen, but nothing to press.
    browser.wait_shown(&format!("#alert-rows tr[data-id='{id}']"));
    assert_eq!(browser.count("#alert-rows button"), 0);
    assert_eq!(browser.count("#detail button"), 1, "only the close button");
    assert!(!browser.shown("#silence-form"));
    // Anything else than a browser following the same link gets the API's JSON.
    let api: Value = tidewatch.get(&format!("/alerts/{id}")).json().unwrap();
    assert_eq!(api["id"], id);
    tidewatch.stop();
}

#[test]
fn an_analyst_silences_a_station_and_reloads_rules_from_the_console() {
    let (_dir, _broker, mut tidewatch) = setup();
    let base = format!("http://127.0.0.1:{}", tidewatch.http);
    let browser = Browser::start();
    browser.goto(&format!("{base}/console#silences"));
    browser.log_in("li", "analyst-pw");
    browser.wait_shown("#silence-form");
    browser.wait_shown("#no-silences");

    // One matching everything is refused with the server's reason.
    browser.fill("#silence-form input[name='comment']", "everything");
    browser.click("#silence-form button");
    browser.wait_text("#silence-error", |t| t.contains("admin role"));

    browser.fill("#silence-form input[name='station']", "LX");
    browser.fill("#silence-form input[name='comment']", "gauge maintenance");
    browser.click("#silence-form button");
    browser.wait_text("#silence-rows", |t| t.contains("LX") && t.contains("li") && t.contains("gauge maintenance"));
    let silences: Vec<Value> = tidewatch.get("/api/silences").json().unwrap();
    assert_eq!(silences.len(), 1, "{silences:?}");
    assert_eq!(silences[0]["station"], "LX");
    assert_eq!(silences[0]["created_by"], "li");

    // And ends it.
    browser.click("#silence-rows button");
    browser.wait_shown("#no-silences");
    let silences: Vec<Value> = tidewatch.get("/api/silences").json().unwrap();
    assert!(silences.is_empty(), "{silences:?}");

    // A rule file saved with a mistake: the page says where, until it is fixed.
    let rule_file = tidewatch.dir.join("rules/test.toml");
    let good = std::fs::read_to_string(&rule_file).unwrap();
    std::fs::write(&rule_file, good.replace("kind = \"threshold\"", "kind = \"treshold\"")).unwrap();
    browser.wait_text("#rules-banner", |t| t.contains("Rule files rejected") && t.contains("rules/test.toml:5:"));
    // The Rules tab: what is in force; asking for a reload says what it found.
    browser.click("#tabs a[data-tab='rules']");
    browser
        .wait_text("#rule-rows", |t| t.contains("level") && t.contains("threshold") && t.contains("rules/test.toml:3"));
    browser.click("#reload");
    browser.wait_text("#reload-error", |t| t.contains("rules/test.toml:5:") && t.contains("treshold"));
    // Fixed and renamed: the reload reports the change.
    std::fs::write(&rule_file, good.replace("id = \"level\"", "id = \"level.v2\"")).unwrap();
    browser.click("#reload");
    browser.wait_text("#reload-report", |t| t.contains("added level.v2") && t.contains("removed level"));
    browser.wait_text("#rule-rows", |t| t.contains("level.v2"));
    let deadline = Instant::now() + WAIT;
    while browser.shown("#rules-banner") {
        assert!(Instant::now() < deadline, "the banner stayed after the fix");
        std::thread::sleep(Duration::from_millis(100));
    }
    tidewatch.stop();
}

#[test]
fn the_event_stream_carries_each_notice_and_ends_when_tidewatch_stops() {
    use std::io::BufRead;
    let (_dir, broker, mut tidewatch) = setup();
    let response = reqwest::blocking::get(format!("http://127.0.0.1:{}/api/events", tidewatch.http)).unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut lines = std::io::BufReader::new(response).lines();
    publish_level(&broker, 29.0);
    let mut event = None;
    while let Some(line) = lines.next() {
        let line = line.unwrap();
        if line == "event: alert" {
            let data = lines.next().unwrap().unwrap();
            event = Some(serde_json::from_str::<Value>(data.strip_prefix("data: ").unwrap()).unwrap());
            break;
        }
    }
    let notice = event.expect("an alert event");
    assert_eq!(notice["transition"], "fire", "{notice}");
    assert_eq!(notice["station"], "LX", "{notice}");
    assert_eq!(notice["severity"], "yellow", "{notice}");
    let alerts: Vec<Value> = tidewatch.get("/api/alerts").json().unwrap();
    assert_eq!(notice["alert_id"], alerts[0]["id"]);

    // Stopping ends the stream rather than waiting for it (the HTTP server gives open
    // requests 5 s before it stops regardless).
    let asked = Instant::now();
    let status = tidewatch.terminate();
    let took = asked.elapsed();
    assert!(status.success(), "{status}: {}", tidewatch.log());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().all(|l| !l.starts_with("event:")), "{rest:?}");
    assert!(took < Duration::from_millis(4500), "stopping took {took:?}: the stream held it");
}

#[test]
fn a_browser_that_prefers_chinese_gets_the_console_in_chinese() {
    let (_dir, broker, mut tidewatch) = setup();
    publish_level(&broker, 29.0);
    tidewatch.wait_until("an open alert", WAIT, |h| h["open_alerts"] == 1);
    let browser = Browser::start_in("zh-CN");
    browser.goto(&format!("http://127.0.0.1:{}/console", tidewatch.http));
    assert_eq!(browser.wait_text("#login-submit", |t| !t.is_empty()), "登录");
    browser.log_in("zhang", "duty-pw");
    browser.wait_text("#tabs", |t| t.contains("告警") && t.contains("静默") && t.contains("规则"));
    let row = browser.wait_text("#alert-rows tr[data-severity='yellow']", |t| t.contains("告警中"));
    assert!(row.contains("黄色") && row.contains("确认") && row.contains("解除"), "{row}");
    browser.click("#alert-rows button.ack");
    browser.wait_text("#alert-rows td.state", |t| t == "zhang 已确认");
    // The header's button switches to English, and the choice is remembered.
    browser.click("#language");
    browser.wait_text("#tabs", |t| t.contains("Alerts"));
    browser.goto(&format!("http://127.0.0.1:{}/console", tidewatch.http));
    browser.wait_text("#alert-rows td.state", |t| t == "acknowledged by zhang");
    tidewatch.stop();
}
