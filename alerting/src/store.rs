//! The durable alert store: alerts, their history, silences, the outbox and every delivery
//! attempt.
//!
//! One code path for both databases: sqlx's `Any` driver with portable SQL, embedded SQLite
//! by default (`sqlite://var/tidewatch.db`) and PostgreSQL by configuration
//! (`postgres://user@host/db`); the migrations in `alerting/migrations/` run at start-up.
//! Each batch of changes is one transaction, and the notifications a change causes are
//! written to the outbox in that same transaction: after a crash, an alert change is either
//! stored with its notifications or not at all.

use std::path::Path;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tidewatch_ingest::time::to_rfc3339;
use tidewatch_rules::Severity;

use crate::lifecycle::{Alert, AlertState, Happening, HistoryEntry, Notice};
use crate::policy::Silence;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A store failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("alert store: {what}: {source}")]
pub struct StoreError {
    what: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

pub(crate) trait Context<T> {
    fn doing(self, what: &str) -> Result<T, StoreError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn doing(self, what: &str) -> Result<T, StoreError> {
        // A driver's message may quote the connection URL: keep its password out.
        self.map_err(|e| StoreError {
            what: crate::secrets::redact(what),
            source: crate::secrets::redact(&e.to_string()).into(),
        })
    }
}

/// An alert row with its escalation timer.
#[derive(Clone, Debug)]
pub struct StoredAlert {
    pub alert: Alert,
    /// Wall-clock time (ms) it climbs the roster if still unacknowledged.
    pub next_escalation_at: Option<i64>,
    /// Wall-clock time (ms) of the change.
    pub changed_at: i64,
}

/// A notification waiting in (or gone from) the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub alert_id: i64,
    pub channel: String,
    /// Notifications with the same channel, group key and recipients go out as one message.
    pub group_key: String,
    pub recipients: Vec<String>,
    pub happening: Happening,
    pub notice: Notice,
    pub created_at: i64,
    pub due_at: i64,
    pub attempts: i64,
}

/// A notification as the API shows it, with its delivery attempts.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct NotificationRecord {
    pub id: i64,
    pub channel: String,
    pub happening: Happening,
    pub recipients: Vec<String>,
    /// pending, sent or suppressed.
    pub status: String,
    pub attempts: i64,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
    pub attempt_log: Vec<AttemptRecord>,
}

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub at: String,
    /// delivered or failed.
    pub outcome: String,
    pub detail: String,
}

/// What one transaction writes.
#[derive(Default, Debug)]
pub struct Changes {
    pub alerts: Vec<StoredAlert>,
    /// (event id, alert id, entry, wall-clock ms).
    pub events: Vec<(i64, i64, HistoryEntry, i64)>,
    pub outbox: Vec<OutboxRow>,
    pub silences: Vec<Silence>,
    /// (silence id, deleted at).
    pub deleted_silences: Vec<(i64, i64)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
            && self.events.is_empty()
            && self.outbox.is_empty()
            && self.silences.is_empty()
            && self.deleted_silences.is_empty()
    }
}

/// How a delivery attempt went, for [`Store::record_attempt`].
pub enum Outcome<'a> {
    Delivered { detail: &'a str },
    Failed { error: &'a str, retry_at: i64 },
}

/// Which alerts to list.
#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    /// `None`: open (firing or acknowledged).
    pub state: Option<StateFilter>,
    pub min_severity: Option<Severity>,
    /// Region code; a city or province code includes its counties.
    pub region: Option<String>,
    pub rule: Option<String>,
    pub station: Option<String>,
    pub limit: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFilter {
    Open,
    All,
    Is(AlertState),
}

/// Where a page of alerts ends: the last alert's place in the listing's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub severity_rank: i64,
    pub changed_at: i64,
    pub id: i64,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.severity_rank, self.changed_at, self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = ();
    fn from_str(s: &str) -> Result<Cursor, ()> {
        let mut parts = s.split('.').map(|p| p.parse::<i64>().map_err(|_| ()));
        let cursor = Cursor {
            severity_rank: parts.next().ok_or(())??,
            changed_at: parts.next().ok_or(())??,
            id: parts.next().ok_or(())??,
        };
        if parts.next().is_some() {
            return Err(());
        }
        Ok(cursor)
    }
}

/// One page of alerts.
#[derive(Clone, Debug)]
pub struct Page {
    pub alerts: Vec<Alert>,
    /// Alerts matching the query, on every page.
    pub total: i64,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Ids to continue numbering from.
#[derive(Clone, Copy, Debug, Default)]
pub struct NextIds {
    pub alert: i64,
    pub event: i64,
    pub outbox: i64,
    pub silence: i64,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite takes a commit as one script (see [`Store::commit`]).
    sqlite: bool,
}

impl Store {
    /// Opens (creating if need be) and migrates the store at `url`: `sqlite://PATH`,
    /// `sqlite::memory:` or `postgres://…`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, false).await
    }

    /// As [`Store::open`]; `full_sync` makes SQLite commits survive a power loss, not only a
    /// crash of the process (`PRAGMA synchronous = FULL`: an fsync per commit). PostgreSQL
    /// commits are durable by its own settings (`synchronous_commit = on`, the default).
    pub async fn open_with(url: &str, full_sync: bool) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let url = if is_sqlite && !url.contains(":memory:") {
            let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).doing(&format!("creating {}", dir.display()))?;
            }
            if url.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            }
        } else {
            url.to_owned()
        };
        let pool = AnyPoolOptions::new()
            // SQLite takes one writer at a time; a small pool keeps readers (the API) going.
            .max_connections(if is_sqlite { 4 } else { 8 })
            // A database that is not there fails the start in seconds, not half a minute.
            .acquire_timeout(std::time::Duration::from_secs(10))
            // A ping before each use is a round trip to sqlx's SQLite worker thread on every
            // commit, on the reading→alert path; a local file does not drop connections.
            .test_before_acquire(!is_sqlite)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
                        // WAL: readers do not block the writer. NORMAL sync is durable across
                        // a process crash (kill -9); only a power loss can lose the last commits.
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        let sync = if full_sync { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" };
                        sqlx::query(sync).execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .doing(&format!("connecting to {url}"))?;
        MIGRATIONS.run(&pool).await.doing("migrating")?;
        Ok(Store { pool, sqlite: is_sqlite })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where numbering continues after a restart.
    pub async fn next_ids(&self) -> Result<NextIds, StoreError> {
        let mut ids = [0i64; 4];
        for (i, sql) in [
            "SELECT COALESCE(MAX(id), 0) FROM alerts",
            "SELECT COALESCE(MAX(seq), 0) FROM alert_events",
            "SELECT COALESCE(MAX(id), 0) FROM outbox",
            "SELECT COALESCE(MAX(id), 0) FROM silences",
        ]
        .into_iter()
        .enumerate()
        {
            let row = sqlx::query(sql).fetch_one(&self.pool).await.doing("reading ids")?;
            ids[i] = row.try_get::<i64, _>(0).doing("reading ids")? + 1;
        }
        Ok(NextIds { alert: ids[0], event: ids[1], outbox: ids[2], silence: ids[3] })
    }

    /// Writes a batch of changes in one transaction.
    pub async fn commit(&self, changes: &Changes) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let writes = writes(changes);
        if self.sqlite {
            return self.commit_script(&writes).await;
        }
        let mut tx = self.pool.begin().await.doing("beginning a transaction")?;
        for write in &writes {
            write.query().execute(&mut *tx).await.doing(write.what)?;
        }
        tx.commit().await.doing("committing")
    }

    /// SQLite: the whole transaction as one script, one round trip to sqlx's worker thread
    /// for the connection instead of one per statement (this commit is on the path from a
    /// reading to its alert notice). Positional `?` parameters run on across the statements.
    async fn commit_script(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut script = String::from("BEGIN IMMEDIATE;\n");
        for write in writes {
            positional(write.sql, &mut script);
            script.push_str(";\n");
        }
        script.push_str("COMMIT;");
        let mut query = sqlx::query(&script);
        for write in writes {
            for value in &write.values {
                query = value.bind(query);
            }
        }
        let mut conn = self.pool.acquire().await.doing("taking a connection")?;
        if let Err(e) = query.execute(&mut *conn).await {
            // The script stopped at the failing statement: undo what it did, or let the
            // connection go rather than hand it on inside a transaction.
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                drop(conn.detach());
            }
            return Err(e).doing("committing alert changes");
        }
        Ok(())
    }

    /// Transitions the rules caused, stored with alert-event sequence numbers from `seq` on:
    /// (rule, station, quantity, event time ms).
    pub async fn transitions_since(&self, seq: i64) -> Result<Vec<(String, String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.rule, a.station, a.quantity, e.body FROM alert_events e JOIN alerts a ON a.id = e.alert_id \
             WHERE e.seq >= $1",
        )
        .bind(seq)
        .fetch_all(&self.pool)
        .await
        .doing("reading transitions since a checkpoint")?;
        let mut out = Vec::new();
        for row in rows {
            let body: String = row.try_get(3).doing("reading an alert event")?;
            let Ok(entry) = serde_json::from_str::<HistoryEntry>(&body) else { continue };
            // Only the rules' changes: not people's actions, reminders or held-back notes.
            let by_rules = matches!(
                entry.happening,
                Happening::Fire | Happening::Escalate | Happening::DeEscalate | Happening::Resolve
            );
            let event_ms = entry
                .event_time
                .filter(|_| by_rules && entry.actor.is_none())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.timestamp_millis());
            if let Some(event_ms) = event_ms {
                out.push((
                    row.try_get(0).doing("reading")?,
                    row.try_get(1).doing("reading")?,
                    row.try_get(2).doing("reading")?,
                    event_ms,
                ));
            }
        }
        Ok(out)
    }

    /// Open alerts with their escalation timers, to restore after a restart.
    pub async fn open_alerts(&self) -> Result<Vec<StoredAlert>, StoreError> {
        let rows = sqlx::query(
            "SELECT body, state, fired_at, next_escalation_at, changed_at FROM alerts WHERE state <> 'resolved'",
        )
        .fetch_all(&self.pool)
        .await
        .doing("reading open alerts")?;
        rows.iter()
            .map(|row| {
                Ok(StoredAlert {
                    alert: read_alert(row)?,
                    next_escalation_at: row.try_get("next_escalation_at").doing("reading an alert")?,
                    changed_at: row.try_get("changed_at").doing("reading an alert")?,
                })
            })
            .collect()
    }

    /// Alerts matching `query`, most severe and most recently changed first, with history.
    pub async fn alerts(&self, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        Ok(self.alerts_page(query, None).await?.alerts)
    }

    /// A page of the alerts matching `query` (at most `query.limit`), after `after`; with
    /// how many match in all and where the next page starts.
    pub async fn alerts_page(&self, query: &AlertQuery, after: Option<Cursor>) -> Result<Page, StoreError> {
        let mut filter = String::from(" WHERE 1 = 1");
        let mut texts: Vec<String> = Vec::new();
        let mut n = 0;
        let mut param = |sql: &mut String, clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        match query.state.unwrap_or(StateFilter::Open) {
            StateFilter::Open => filter.push_str(" AND state <> 'resolved'"),
            StateFilter::All => {}
            StateFilter::Is(state) => {
                param(&mut filter, " AND state = ?");
                texts.push(state.name().to_owned());
            }
        }
        if let Some(rule) = &query.rule {
            param(&mut filter, " AND rule = ?");
            texts.push(rule.clone());
        }
        if let Some(station) = &query.station {
            param(&mut filter, " AND station = ?");
            texts.push(station.clone());
        }
        if let Some(region) = &query.region {
            param(&mut filter, " AND region LIKE ?");
            texts.push(format!("{}%", crate::policy::region_prefix(region)));
        }
        let rank = query.min_severity.map(|s| s as i64).unwrap_or(0);
        param(&mut filter, " AND severity_rank >= ?");

        let count_sql = format!("SELECT COUNT(*) FROM alerts{filter}");
        let mut count = sqlx::query(&count_sql);
        for t in &texts {
            count = count.bind(t.as_str());
        }
        let total: i64 = count
            .bind(rank)
            .fetch_one(&self.pool)
            .await
            .doing("counting alerts")?
            .try_get(0)
            .doing("counting alerts")?;

        // Keyset paging in the listing's order: (severity, changed, id) descending.
        let mut sql = format!("SELECT body, state, fired_at, severity_rank, changed_at FROM alerts{filter}");
        if after.is_some() {
            let (r, c, i) = (n + 1, n + 2, n + 3);
            n += 3;
            sql.push_str(&format!(
                " AND (severity_rank < ${r} OR (severity_rank = ${r} AND (changed_at < ${c} OR (changed_at = ${c} AND id < ${i}))))"
            ));
        }
        sql.push_str(&format!(" ORDER BY severity_rank DESC, changed_at DESC, id DESC LIMIT ${}", n + 1));
        let mut q = sqlx::query(&sql);
        for t in &texts {
            q = q.bind(t.as_str());
        }
        q = q.bind(rank);
        if let Some(c) = after {
            q = q.bind(c.severity_rank).bind(c.changed_at).bind(c.id);
        }
        let limit = query.limit.max(1);
        let rows = q.bind(limit + 1).fetch_all(&self.pool).await.doing("listing alerts")?;
        let more = rows.len() as i64 > limit;
        let rows = &rows[..rows.len().min(limit as usize)];
        let next = match rows.last() {
            Some(row) if more => Some(Cursor {
                severity_rank: row.try_get("severity_rank").doing("listing alerts")?,
                changed_at: row.try_get("changed_at").doing("listing alerts")?,
                id: read_alert(row)?.id,
            }),
            _ => None,
        };
        let mut alerts = rows.iter().map(read_alert).collect::<Result<Vec<_>, _>>()?;
        self.fill_history(&mut alerts).await?;
        Ok(Page { alerts, total, next })
    }

    /// One alert with its history.
    pub async fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError> {
        let row = sqlx::query("SELECT body, state, fired_at FROM alerts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .doing("reading an alert")?;
        let Some(row) = row else { return Ok(None) };
        let mut alerts = vec![read_alert(&row)?];
        self.fill_history(&mut alerts).await?;
        Ok(alerts.pop())
    }

    async fn fill_history(&self, alerts: &mut [Alert]) -> Result<(), StoreError> {
        for chunk in alerts.chunks_mut(200) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT alert_id, body FROM alert_events WHERE alert_id IN ({}) ORDER BY seq",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for a in chunk.iter() {
                q = q.bind(a.id);
            }
            for row in q.fetch_all(&self.pool).await.doing("reading alert history")? {
                let id: i64 = row.try_get(0).doing("reading alert history")?;
                let body: String = row.try_get(1).doing("reading alert history")?;
                let entry: HistoryEntry = serde_json::from_str(&body).doing("decoding alert history")?;
                if let Some(a) = chunk.iter_mut().find(|a| a.id == id) {
                    a.history.push(entry);
                }
            }
        }
        Ok(())
    }

    /// The notifications about an alert and their delivery attempts.
    pub async fn notifications(&self, alert_id: i64) -> Result<Vec<NotificationRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, channel, happening, recipients, status, attempts, created_at, sent_at, last_error \
             FROM outbox WHERE alert_id = $1 ORDER BY id",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await
        .doing("reading notifications")?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0).doing("reading notifications")?;
            let attempts = sqlx::query(
                "SELECT attempt, at, outcome, detail FROM delivery_attempts WHERE outbox_id = $1 ORDER BY attempt",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .doing("reading delivery attempts")?;
            let attempt_log = attempts
                .iter()
                .map(|a| {
                    Ok(AttemptRecord {
                        attempt: a.try_get(0)?,
                        at: to_rfc3339(a.try_get(1)?),
                        outcome: a.try_get(2)?,
                        detail: a.try_get(3)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .doing("reading delivery attempts")?;
            let happening: String = row.try_get(2).doing("reading notifications")?;
            let recipients: String = row.try_get(3).doing("reading notifications")?;
            out.push(NotificationRecord {
                id,
                channel: row.try_get(1).doing("reading notifications")?,
                happening: Happening::parse(&happening).unwrap_or(Happening::Fire),
                recipients: serde_json::from_str(&recipients).unwrap_or_default(),
                status: row.try_get(4).doing("reading notifications")?,
                attempts: row.try_get(5).doing("reading notifications")?,
                created_at: to_rfc3339(row.try_get(6).doing("reading notifications")?),
                sent_at: row.try_get::<Option<i64>, _>(7).doing("reading notifications")?.map(to_rfc3339),
                last_error: row.try_get(8).doing("reading notifications")?,
                attempt_log,
            });
        }
        Ok(out)
    }

    /// Brings retries (pending notifications that failed before) forward to `now`, on one
    /// channel or all; returns how many.
    pub async fn retry_now(&self, channel: Option<&str>, now: i64) -> Result<u64, StoreError> {
        let done = match channel {
            Some(channel) => sqlx::query(
                "UPDATE outbox SET due_at = $1 WHERE status = 'pending' AND attempts > 0 AND due_at > $1 AND channel = $2",
            )
            .bind(now)
            .bind(channel)
            .execute(&self.pool)
            .await,
            None => sqlx::query("UPDATE outbox SET due_at = $1 WHERE status = 'pending' AND attempts > 0 AND due_at > $1")
                .bind(now)
                .execute(&self.pool)
                .await,
        };
        Ok(done.doing("rescheduling retries")?.rows_affected())
    }

    /// Pending notifications due by `horizon`, oldest first.
    pub async fn pending(&self, horizon: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, alert_id, channel, group_key, recipients, happening, notice, created_at, due_at, attempts \
             FROM outbox WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at, id LIMIT $2",
        )
        .bind(horizon)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .doing("reading the outbox")?;
        rows.iter()
            .map(|row| {
                let recipients: String = row.try_get(4).doing("reading the outbox")?;
                let happening: String = row.try_get(5).doing("reading the outbox")?;
                let notice: String = row.try_get(6).doing("reading the outbox")?;
                Ok(OutboxRow {
                    id: row.try_get(0).doing("reading the outbox")?,
                    alert_id: row.try_get(1).doing("reading the outbox")?,
                    channel: row.try_get(2).doing("reading the outbox")?,
                    group_key: row.try_get(3).doing("reading the outbox")?,
                    recipients: serde_json::from_str(&recipients).doing("decoding outbox recipients")?,
                    happening: Happening::parse(&happening).unwrap_or(Happening::Fire),
                    notice: serde_json::from_str(&notice).doing("decoding an outbox notice")?,
                    created_at: row.try_get(7).doing("reading the outbox")?,
                    due_at: row.try_get(8).doing("reading the outbox")?,
                    attempts: row.try_get(9).doing("reading the outbox")?,
                })
            })
            .collect()
    }

    /// Pending notifications, for /metrics.
    pub async fn pending_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await
            .doing("counting the outbox")?;
        row.try_get::<i64, _>(0).doing("counting the outbox")
    }

    /// Records one attempt at delivering `rows` (sent as one message).
    pub async fn record_attempt(&self, rows: &[OutboxRow], now: i64, outcome: Outcome<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.doing("beginning a transaction")?;
        for row in rows {
            let attempt = row.attempts + 1;
            let (kind, detail) = match &outcome {
                Outcome::Delivered { detail } => {
                    sqlx::query("UPDATE outbox SET status = 'sent', attempts = $1, sent_at = $2 WHERE id = $3")
                        .bind(attempt)
                        .bind(now)
                        .bind(row.id)
                        .execute(&mut *tx)
                        .await
                        .doing("marking a notification sent")?;
                    ("delivered", *detail)
                }
                Outcome::Failed { error, retry_at } => {
                    sqlx::query("UPDATE outbox SET attempts = $1, due_at = $2, last_error = $3 WHERE id = $4")
                        .bind(attempt)
                        .bind(retry_at)
                        .bind(*error)
                        .bind(row.id)
                        .execute(&mut *tx)
                        .await
                        .doing("recording a failed notification")?;
                    ("failed", *error)
                }
            };
            sqlx::query(
                "INSERT INTO delivery_attempts (outbox_id, attempt, at, outcome, detail) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(row.id)
            .bind(attempt)
            .bind(now)
            .bind(kind)
            .bind(detail.chars().take(1000).collect::<String>())
            .execute(&mut *tx)
            .await
            .doing("recording a delivery attempt")?;
        }
        tx.commit().await.doing("committing")
    }

    /// Silences created over the API that have not ended or been deleted by `now`.
    pub async fn silences(&self, now: i64) -> Result<Vec<Silence>, StoreError> {
        let rows = sqlx::query(
            "SELECT body, starts_at, ends_at FROM silences WHERE deleted_at IS NULL AND ends_at > $1 ORDER BY id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .doing("reading silences")?;
        rows.iter()
            .map(|row| {
                let body: String = row.try_get(0).doing("reading silences")?;
                let mut s: Silence = serde_json::from_str(&body).doing("decoding a silence")?;
                s.starts_ms = row.try_get(1).doing("reading silences")?;
                s.ends_ms = row.try_get(2).doing("reading silences")?;
                Ok(s)
            })
            .collect()
    }
}

fn alert_body(a: &Alert) -> String {
    if a.history.is_empty() {
        serde_json::to_string(a).unwrap_or_default()
    } else {
        let mut bare = a.clone();
        bare.history.clear();
        serde_json::to_string(&bare).unwrap_or_default()
    }
}

fn read_alert(row: &AnyRow) -> Result<Alert, StoreError> {
    let body: String = row.try_get("body").doing("reading an alert")?;
    let mut alert: Alert = serde_json::from_str(&body).doing("decoding an alert")?;
    let state: String = row.try_get("state").doing("reading an alert")?;
    alert.state = AlertState::parse(&state).unwrap_or(alert.state);
    alert.fired_ms = row.try_get("fired_at").doing("reading an alert")?;
    Ok(alert)
}

/// One statement of a commit: what it does (for errors), its SQL with `$1`, `$2`, … in order
/// of appearance, and its values.
struct Write {
    what: &'static str,
    sql: &'static str,
    values: Vec<Value>,
}

enum Value {
    Int(i64),
    MaybeInt(Option<i64>),
    Text(String),
    MaybeText(Option<String>),
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl Value {
    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        match self {
            Value::Int(v) => query.bind(*v),
            Value::MaybeInt(v) => query.bind(*v),
            Value::Text(v) => query.bind(v.as_str()),
            Value::MaybeText(v) => query.bind(v.as_deref()),
        }
    }
}

impl Write {
    /// The statement alone, with its values bound.
    fn query(&self) -> AnyQuery<'_> {
        self.values.iter().fold(sqlx::query(self.sql), |query, value| value.bind(query))
    }
}

/// `sql` with its `$N` parameters as `?` (they appear in order), appended to `out`.
fn positional(sql: &str, out: &mut String) {
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
}

/// The statements that store `changes`, in order.
fn writes(changes: &Changes) -> Vec<Write> {
    let mut writes = Vec::new();
    for s in &changes.alerts {
        let a = &s.alert;
        writes.push(Write {
            what: "writing an alert",
            sql: "INSERT INTO alerts (id, rule, station, quantity, region, state, severity, severity_rank, fired_at, \
                  changed_at, escalation_level, next_escalation_at, team, body) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                  ON CONFLICT (id) DO UPDATE SET state = excluded.state, severity = excluded.severity, \
                  severity_rank = excluded.severity_rank, changed_at = excluded.changed_at, \
                  escalation_level = excluded.escalation_level, next_escalation_at = excluded.next_escalation_at, \
                  team = excluded.team, body = excluded.body",
            values: vec![
                Value::Int(a.id),
                Value::Text(a.rule.clone()),
                Value::Text(a.subject.station.clone()),
                Value::Text(a.subject.quantity.clone()),
                Value::Text(a.subject.region.clone()),
                Value::Text(a.state.name().to_owned()),
                Value::Text(a.severity.name().to_owned()),
                Value::Int(a.severity as i64),
                Value::Int(a.fired_ms),
                Value::Int(s.changed_at),
                Value::Int(i64::from(a.escalation_level)),
                Value::MaybeInt(s.next_escalation_at),
                Value::MaybeText(a.team.clone()),
                Value::Text(alert_body(a)),
            ],
        });
    }
    for (seq, alert_id, entry, at) in &changes.events {
        writes.push(Write {
            what: "writing an alert event",
            sql: "INSERT INTO alert_events (alert_id, seq, happening, at, body) VALUES ($1, $2, $3, $4, $5)",
            values: vec![
                Value::Int(*alert_id),
                Value::Int(*seq),
                Value::Text(entry.happening.name().to_owned()),
                Value::Int(*at),
                Value::Text(serde_json::to_string(entry).unwrap_or_default()),
            ],
        });
    }
    for row in &changes.outbox {
        writes.push(Write {
            what: "writing to the outbox",
            sql: "INSERT INTO outbox (id, alert_id, channel, group_key, recipients, happening, notice, created_at, \
                  due_at, status, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0)",
            values: vec![
                Value::Int(row.id),
                Value::Int(row.alert_id),
                Value::Text(row.channel.clone()),
                Value::Text(row.group_key.clone()),
                Value::Text(serde_json::to_string(&row.recipients).unwrap_or_default()),
                Value::Text(row.happening.name().to_owned()),
                Value::Text(serde_json::to_string(&row.notice).unwrap_or_default()),
                Value::Int(row.created_at),
                Value::Int(row.due_at),
            ],
        });
    }
    for s in &changes.silences {
        writes.push(Write {
            what: "writing a silence",
            sql: "INSERT INTO silences (id, starts_at, ends_at, body) VALUES ($1, $2, $3, $4)",
            values: vec![
                Value::Int(s.id),
                Value::Int(s.starts_ms),
                Value::Int(s.ends_ms),
                Value::Text(serde_json::to_string(s).unwrap_or_default()),
            ],
        });
    }
    for (id, at) in &changes.deleted_silences {
        writes.push(Write {
            what: "deleting a silence",
            sql: "UPDATE silences SET deleted_at = $1 WHERE id = $2",
            values: vec![Value::Int(*at), Value::Int(*id)],
        });
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_positional_in_order() {
        let mut out = String::new();
        positional("UPDATE silences SET deleted_at = $1 WHERE id = $12 AND note = 'x'", &mut out);
        assert_eq!(out, "UPDATE silences SET deleted_at = ? WHERE id = ? AND note = 'x'");
    }

    fn silence(id: i64) -> Silence {
        Silence {
            id,
            station: Some("LX".into()),
            rule: None,
            region: None,
            starts_at: String::new(),
            ends_at: String::new(),
            created_by: "test".into(),
            comment: String::new(),
            source: "api".into(),
            starts_ms: 0,
            ends_ms: i64::MAX,
        }
    }

    #[tokio::test]
    async fn a_failed_sqlite_commit_leaves_nothing_and_the_next_one_goes_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("alerts.db").display())).await.unwrap();
        let add = |ids: &[i64]| Changes { silences: ids.iter().map(|&id| silence(id)).collect(), ..Changes::default() };
        store.commit(&add(&[1])).await.unwrap();
        // Silence 2, then silence 1 again: the second insert fails, and the first is undone.
        let error = store.commit(&add(&[2, 1])).await.unwrap_err();
        assert!(error.to_string().contains("committing alert changes"), "{error}");
        for _ in 0..8 {
            // Every pooled connection is usable afterwards (none left inside a transaction).
            store.commit(&Changes { deleted_silences: vec![(1, 5)], ..Changes::default() }).await.unwrap();
        }
        store.commit(&add(&[3, 4])).await.unwrap();
        let ids: Vec<i64> = store.silences(0).await.unwrap().iter().map(|s| s.id).collect();
        assert_eq!(ids, [3, 4], "silence 1 deleted, silence 2 never stored");
    }
}
