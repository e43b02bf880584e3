//! Rule files reloaded while Tidewatch runs: when a file changes (looked at every two
//! seconds), on `SIGHUP`, or when an analyst asks (`POST /api/rules/reload`).
//!
//! A reload reads and compiles every rule file against the station registry. Any error
//! rejects it whole — every problem reported with its file:line:col — and the rules in force
//! stay. Otherwise the engine takes the new rules at one point in its input
//! ([`tidewatch_rules::EngineInput::reload`]): state of unchanged rules is kept, a changed
//! rule holds the colour of the alert it had open, open alerts of a removed rule resolve.
//! The alert manager learns the new rules just before their first event (see `deliver` in
//! [`crate::runtime`]), and the next checkpoint takes every state under the new rules.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tidewatch_ingest::time::to_rfc3339;
use tidewatch_ingest::Registry;
use tidewatch_rules::eval::Reloaded;
use tidewatch_rules::{compile, read_sources, EngineInput, RuleSet, RuleSource, Severity};
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

use crate::durable::Durable;
use crate::runtime::AppState;

/// How often the rule files are looked at.
const POLL: Duration = Duration::from_secs(2);

/// The rules in force and how the last reload went (`GET /api/rules`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RulesInForce {
    /// Wall-clock time (RFC 3339) the rules in force were loaded.
    pub loaded_at: String,
    /// The rule files (empty: the rules are built into the binary, as in the demo, and are
    /// not reloaded).
    pub files: Vec<String>,
    pub rules: Vec<RuleSummary>,
    pub last_reload: Option<ReloadReport>,
}

/// One rule in force.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RuleSummary {
    pub id: String,
    pub kind: &'static str,
    pub title: Option<String>,
    /// Its colours, least severe first.
    pub severities: Vec<Severity>,
    /// Where it is written (`file:line`).
    pub at: String,
    /// What its state means, as a short hash: a reload keeps the state of a rule whose
    /// fingerprint did not change.
    pub fingerprint: String,
}

/// What a reload did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReloadReport {
    /// Wall-clock time (RFC 3339).
    pub at: String,
    /// `file change`, `SIGHUP`, or `request by NAME`.
    pub trigger: String,
    pub outcome: Outcome,
    /// Why it was rejected: each problem as `file:line:col: message`.
    pub errors: Vec<String>,
    /// Rule ids new in the files.
    pub added: Vec<String>,
    /// Rules whose meaning changed: they start afresh, holding the colour of their open
    /// alerts.
    pub changed: Vec<String>,
    /// Rules gone from the files: their open alerts resolve.
    pub removed: Vec<String>,
    /// What the engine did with the rule state, once every worker has taken the new rules.
    pub engine: Option<Reloaded>,
}

/// How a reload ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The new rules are in force.
    Applied,
    /// The files say what is in force already.
    Unchanged,
    /// The files have errors: the rules in force stay.
    Rejected,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Unchanged => "unchanged",
            Outcome::Rejected => "rejected",
        }
    }
}

impl RulesInForce {
    pub fn new(files: &[PathBuf], rules: &RuleSet, now: i64) -> RulesInForce {
        RulesInForce {
            loaded_at: to_rfc3339(now),
            files: files.iter().map(|f| f.display().to_string()).collect(),
            rules: rules
                .rules
                .iter()
                .map(|r| RuleSummary {
                    id: r.id.to_string(),
                    kind: r.spec.kind.name(),
                    title: r.spec.title.clone(),
                    severities: r.severities.clone(),
                    at: format!("{}:{}", r.spec.at.file, r.spec.at.line),
                    fingerprint: r.fingerprint(),
                })
                .collect(),
            last_reload: None,
        }
    }
}

/// A request to reload now: who asks, and where the report goes.
pub type Request = (String, oneshot::Sender<ReloadReport>);

/// Whether `files` are real files to watch (the demo's rules are built in).
pub fn reloadable(files: &[PathBuf]) -> bool {
    !files.is_empty() && files.iter().all(|f| !f.to_string_lossy().starts_with('<'))
}

pub struct Reloader {
    pub files: Vec<PathBuf>,
    pub registry: Arc<Registry>,
    pub rules: Arc<RuleSet>,
    pub input: EngineInput,
    pub durable: Option<Arc<Durable>>,
    pub state: Arc<AppState>,
    /// (rule set, what the workers did) once every worker has taken a rule set.
    pub engine_reports: mpsc::UnboundedReceiver<(Arc<RuleSet>, Reloaded)>,
}

/// How long a reload waits for every engine worker to take the new rules before it reports
/// without their figures.
const ENGINE_WAIT: Duration = Duration::from_secs(10);

impl Reloader {
    /// Watches the files, takes `SIGHUP` and requests, until the task is aborted. `sources`:
    /// what the rules in force were compiled from.
    pub async fn run(mut self, mut sources: Vec<RuleSource>, mut requests: mpsc::Receiver<Request>) {
        // What the files said when last read by a reload: a poll that finds them the same
        // says nothing (a file left broken is reported once, not every two seconds).
        let mut last_seen: Result<Vec<RuleSource>, Vec<String>> = Ok(sources.clone());
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let sighup = async {
                match hangup.as_mut() {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let sighup = std::future::pending::<()>();
            let (trigger, reply) = tokio::select! {
                _ = poll.tick() => ("file change".to_owned(), None),
                () = sighup => ("SIGHUP".to_owned(), None),
                request = requests.recv() => match request {
                    Some((who, reply)) => (format!("request by {who}"), Some(reply)),
                    None => return,
                },
            };
            let read = read_sources(&self.files).map_err(|d| vec![d.to_string()]);
            if read == last_seen && trigger == "file change" {
                continue;
            }
            last_seen = read.clone();
            let report = self.attempt(&trigger, read, &mut sources).await;
            self.record(&report);
            if let Some(reply) = reply {
                let _ = reply.send(report);
            }
        }
    }

    async fn attempt(
        &mut self,
        trigger: &str,
        read: Result<Vec<RuleSource>, Vec<String>>,
        sources: &mut Vec<RuleSource>,
    ) -> ReloadReport {
        let mut report = ReloadReport {
            at: to_rfc3339(tidewatch_connectors::envelope::now_ms()),
            trigger: trigger.to_owned(),
            outcome: Outcome::Rejected,
            errors: Vec::new(),
            added: Vec::new(),
            changed: Vec::new(),
            removed: Vec::new(),
            engine: None,
        };
        let read = match read {
            Ok(read) => read,
            Err(errors) => {
                report.errors = errors;
                return report;
            }
        };
        if *sources == read {
            report.outcome = Outcome::Unchanged;
            return report;
        }
        let new = match compile(&read, &self.registry) {
            Ok(new) => Arc::new(new),
            Err(diagnostics) => {
                report.errors = diagnostics.iter().map(|d| d.to_string()).collect();
                return report;
            }
        };
        for rule in &new.rules {
            match self.rules.get(&rule.id) {
                None => report.added.push(rule.id.to_string()),
                Some(old) if old.fingerprint() != rule.fingerprint() => report.changed.push(rule.id.to_string()),
                Some(_) => {}
            }
        }
        report.removed =
            self.rules.rules.iter().filter(|r| new.get(&r.id).is_none()).map(|r| r.id.to_string()).collect();
        // Behind every reading handed over so far; blocks while the engine is a channel behind.
        let input = self.input.clone();
        let sent = {
            let new = new.clone();
            tokio::task::spawn_blocking(move || input.reload(new)).await
        };
        if !matches!(sent, Ok(Ok(()))) {
            report.errors = vec!["the rules engine has stopped".to_owned()];
            return report;
        }
        if let Some(durable) = &self.durable {
            durable.rules_reloaded();
        }
        report.outcome = Outcome::Applied;
        let waited = tokio::time::timeout(ENGINE_WAIT, async {
            while let Some((rules, engine)) = self.engine_reports.recv().await {
                if Arc::ptr_eq(&rules, &new) {
                    return Some(engine);
                }
            }
            None
        });
        report.engine = waited.await.ok().flatten();
        self.rules = new;
        *sources = read;
        report
    }

    /// Logs the report, counts it, and shows it in `GET /api/rules`.
    fn record(&self, report: &ReloadReport) {
        match report.outcome {
            Outcome::Applied => tracing::info!(
                trigger = %report.trigger,
                added = ?report.added,
                changed = ?report.changed,
                removed = ?report.removed,
                rules = self.rules.rules.len(),
                states_kept = report.engine.map(|e| e.kept),
                alerts_held = report.engine.map(|e| e.restarted),
                alerts_resolved = report.engine.map(|e| e.resolved),
                "rules reloaded"
            ),
            Outcome::Unchanged => tracing::info!(trigger = %report.trigger, "rules unchanged"),
            Outcome::Rejected => tracing::error!(
                trigger = %report.trigger,
                "rule files rejected; the rules in force stay:\n  {}",
                report.errors.join("\n  ")
            ),
        }
        self.state
            .metrics
            .rule_reloads
            .get_or_create(&crate::metrics::OutcomeLabels { outcome: report.outcome.name().into() })
            .inc();
        let mut shown = self.state.rules.lock().unwrap_or_else(|e| e.into_inner());
        if report.outcome == Outcome::Applied {
            *shown = RulesInForce::new(&self.files, &self.rules, tidewatch_connectors::envelope::now_ms());
        }
        shown.last_reload = Some(report.clone());
    }
}
