//! The dispatcher: sends what the outbox holds.
//!
//! Pending notifications with the same channel, group key (rule and region) and recipients
//! go out as one message once the oldest of them is due; so alerts of one rule and region
//! arriving within the group wait are one message. Each channel has a token bucket
//! (`rate_per_minute`); when more groups wait than the bucket allows, the last token carries
//! all the rest as one digest — queued and batched, never dropped. A failed send is retried
//! with exponential back-off, each attempt recorded. A send is recorded only after the far
//! end accepted it, so a crash in between can repeat a message (webhooks carry
//! `notification_ids` for that) but never lose one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::duty::{Duty, Member};
use crate::lifecycle::Notice;
use crate::manager::{now_ms, AlertingSettings, Observer};
use crate::message::compose;
use crate::notify::{Notifier, Outgoing};
use crate::store::{OutboxRow, Outcome, Store};

/// A token bucket: `capacity` messages, refilled evenly over a minute.
#[derive(Clone, Debug)]
pub struct RateLimit {
    capacity: f64,
    tokens: f64,
    updated: i64,
}

impl RateLimit {
    pub fn per_minute(n: u32, now: i64) -> RateLimit {
        RateLimit { capacity: f64::from(n.max(1)), tokens: f64::from(n.max(1)), updated: now }
    }

    fn refill(&mut self, now: i64) {
        let elapsed = (now - self.updated).max(0) as f64;
        self.tokens = (self.tokens + elapsed * self.capacity / 60_000.0).min(self.capacity);
        self.updated = now;
    }

    /// Whole messages that may go now.
    pub fn available(&mut self, now: i64) -> usize {
        self.refill(now);
        self.tokens.floor() as usize
    }

    pub fn take(&mut self, now: i64) {
        self.refill(now);
        self.tokens -= 1.0;
    }

    /// When the next whole token is there.
    pub fn next_at(&self) -> i64 {
        let missing = (1.0 - self.tokens).max(0.0);
        self.updated + (missing * 60_000.0 / self.capacity).ceil() as i64
    }
}

/// Splits groups waiting on one channel into messages that fit `tokens` sends: one message
/// per group while tokens last, the last token carrying every remaining group.
pub fn plan_messages<T>(mut groups: Vec<Vec<T>>, tokens: usize) -> Vec<Vec<T>> {
    if tokens == 0 || groups.is_empty() {
        return Vec::new();
    }
    if groups.len() <= tokens {
        return groups;
    }
    let rest: Vec<T> = groups.drain(tokens - 1..).flatten().collect();
    groups.push(rest);
    groups
}

pub(crate) struct Dispatcher {
    store: Store,
    duty: Arc<Duty>,
    settings: AlertingSettings,
    observer: Arc<dyn Observer>,
    wake: Arc<Notify>,
    notifiers: HashMap<String, Arc<Notifier>>,
    limits: HashMap<String, RateLimit>,
    /// Failed attempts of pending notifications in this process (not before a restart):
    /// what their back-off grows with.
    failures: HashMap<i64, u32>,
    /// Channels whose last send failed: their first success brings their waiting retries
    /// forward.
    failing: HashSet<String>,
}

impl Dispatcher {
    pub(crate) fn new(
        store: Store,
        duty: Arc<Duty>,
        settings: AlertingSettings,
        observer: Arc<dyn Observer>,
        wake: Arc<Notify>,
    ) -> Result<Dispatcher, crate::StartError> {
        let now = now_ms();
        let mut notifiers = HashMap::new();
        let mut limits = HashMap::new();
        for (name, config) in &duty.file.channel {
            notifiers.insert(name.clone(), Arc::new(Notifier::new(name, config).map_err(crate::StartError::Channel)?));
            if let Some(n) = config.rate_per_minute() {
                limits.insert(name.clone(), RateLimit::per_minute(n, now));
            }
        }
        Ok(Dispatcher {
            store,
            duty,
            settings,
            observer,
            wake,
            notifiers,
            limits,
            failures: HashMap::new(),
            failing: HashSet::new(),
        })
    }

    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        // A retry scheduled before a restart was timed for a channel that may well work now:
        // every waiting retry is tried at once, and backs off afresh if it fails again.
        match self.store.retry_now(None, now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(notifications = n, "retrying notifications that failed before the restart now"),
            Err(e) => tracing::error!(error = %e, "rescheduling notifications that failed before the restart"),
        }
        // Sends in flight, and the outbox rows they carry: a new pass does not wait for
        // them (a slow far end must not hold back the next alert) and does not send them
        // again.
        let mut sends: Sends = JoinSet::new();
        let mut in_flight: HashSet<i64> = HashSet::new();
        loop {
            let stopping = *stop.borrow();
            let next = match self.pass(stopping, &mut sends, &mut in_flight).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "dispatching notifications");
                    Some(now_ms() + 1000)
                }
            };
            if stopping {
                // Flushing: everything due was started; see every send through.
                while let Some(joined) = sends.join_next().await {
                    self.finished(joined, &mut in_flight).await;
                }
                break;
            }
            let wait = next.map(|at| (at - now_ms()).clamp(0, 1000)).unwrap_or(1000);
            tokio::select! {
                Some(joined) = sends.join_next(), if !sends.is_empty() => self.finished(joined, &mut in_flight).await,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::debug!("dispatcher stopped");
    }

    /// Starts sending every group that is due (all of them when `flush`) and not already
    /// in flight; returns when to look again.
    async fn pass(
        &mut self,
        flush: bool,
        sends: &mut Sends,
        in_flight: &mut HashSet<i64>,
    ) -> Result<Option<i64>, crate::store::StoreError> {
        let now = now_ms();
        let horizon = now + self.settings.group_wait_ms;
        let rows = self.store.pending(horizon, 20_000).await?;
        let mut groups: BTreeMap<(String, String, Vec<String>), Vec<OutboxRow>> = BTreeMap::new();
        for row in rows.into_iter().filter(|r| !in_flight.contains(&r.id)) {
            groups.entry((row.channel.clone(), row.group_key.clone(), row.recipients.clone())).or_default().push(row);
        }
        let mut next: Option<i64> = None;
        let mut soonest = |at: i64| next = Some(next.map_or(at, |n: i64| n.min(at)));
        let mut by_channel: BTreeMap<String, Vec<Vec<OutboxRow>>> = BTreeMap::new();
        for ((channel, _, _), rows) in groups {
            let due = rows.iter().map(|r| r.due_at).min().unwrap_or(now);
            if due <= now || flush {
                by_channel.entry(channel).or_default().push(rows);
            } else {
                soonest(due);
            }
        }
        for (channel, groups) in by_channel {
            let Some(notifier) = self.notifiers.get(&channel).cloned() else {
                tracing::warn!(channel, "notifications for a channel no longer configured wait in the outbox");
                continue;
            };
            let tokens = match self.limits.get_mut(&channel) {
                Some(limit) => {
                    let n = limit.available(now);
                    if n == 0 {
                        soonest(limit.next_at());
                        continue;
                    }
                    n
                }
                None => usize::MAX,
            };
            for rows in plan_messages(groups, tokens) {
                if let Some(limit) = self.limits.get_mut(&channel) {
                    limit.take(now);
                }
                in_flight.extend(rows.iter().map(|r| r.id));
                let (notifier, duty, settings, channel) =
                    (notifier.clone(), self.duty.clone(), self.settings.clone(), channel.clone());
                tracing::trace!(channel, notifications = rows.len(), "sending");
                sends.spawn(async move {
                    let result = send(&notifier, &duty, &settings, &rows).await;
                    tracing::trace!(ok = result.is_ok(), "sent");
                    (channel, rows, result)
                });
            }
        }
        Ok(next)
    }

    /// Records how a send ended: delivered, or failed with the time of its retry.
    async fn finished(&mut self, joined: Result<SendResult, tokio::task::JoinError>, in_flight: &mut HashSet<i64>) {
        let Ok((channel, rows, result)) = joined else { return };
        let done = now_ms();
        let recorded = match result {
            Ok(detail) => {
                self.observer.delivered(&channel, rows.len());
                for row in &rows {
                    self.failures.remove(&row.id);
                }
                let recorded = self.store.record_attempt(&rows, done, Outcome::Delivered { detail: &detail }).await;
                // The channel works again: what waits to be retried on it goes now.
                if self.failing.remove(&channel) {
                    match self.store.retry_now(Some(&channel), done).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(channel, notifications = n, "channel works again: retrying now");
                            self.wake.notify_one();
                        }
                        Err(e) => tracing::error!(error = %e, "rescheduling retries"),
                    }
                }
                recorded
            }
            Err(error) => {
                self.failing.insert(channel.clone());
                let mut attempts = 0;
                for row in &rows {
                    let n = self.failures.entry(row.id).or_insert(0);
                    attempts = attempts.max(*n);
                    *n += 1;
                }
                let backoff = (5_000i64 << attempts.min(16)).min(self.settings.max_retry_ms.max(1000));
                tracing::warn!(channel, error = %error, retry_in_ms = backoff, "notification failed; will retry");
                self.observer.failed(&channel, &error);
                self.store
                    .record_attempt(&rows, done, Outcome::Failed { error: &error, retry_at: done + backoff })
                    .await
            }
        };
        // Only once recorded may a row be picked up again (if recording failed, it is still
        // pending and will be sent again: at least once).
        if let Err(e) = recorded {
            tracing::error!(error = %e, "recording a delivery attempt");
        }
        for row in &rows {
            in_flight.remove(&row.id);
        }
    }
}

/// A finished send: (channel, rows, what the far end said).
type SendResult = (String, Vec<OutboxRow>, Result<String, String>);

/// Sends under way.
type Sends = JoinSet<SendResult>;

/// Composes and sends one message about `rows`.
async fn send(
    notifier: &Notifier,
    duty: &Duty,
    settings: &AlertingSettings,
    rows: &[OutboxRow],
) -> Result<String, String> {
    let mut members: Vec<&Member> = Vec::new();
    for id in rows.iter().flat_map(|r| &r.recipients) {
        if let Some(m) = duty.member(id) {
            if !members.iter().any(|x| x.id == m.id) {
                members.push(m);
            }
        }
    }
    let notices: Vec<_> = rows.iter().map(|r| Notice { notification_id: Some(r.id), ..r.notice.clone() }).collect();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let message = compose(settings.language, &notices, settings.console_url.as_deref());
    let out = Outgoing { ids: &ids, notices: &notices, recipients: &members, message: &message };
    notifier.send(&out).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_bucket_allows_its_rate_and_refills_evenly() {
        let mut limit = RateLimit::per_minute(20, 0);
        assert_eq!(limit.available(0), 20);
        for _ in 0..20 {
            limit.take(0);
        }
        assert_eq!(limit.available(0), 0);
        assert_eq!(limit.next_at(), 3_000, "one message every 3 s");
        assert_eq!(limit.available(3_000), 1);
        assert_eq!(limit.available(600_000), 20, "never more than the capacity");
    }

    proptest! {
        #[test]
        fn planning_never_drops_a_notification_nor_exceeds_the_tokens(
            sizes in proptest::collection::vec(1usize..5, 0..30), tokens in 0usize..10
        ) {
            let mut next = 0;
            let groups: Vec<Vec<usize>> = sizes.iter().map(|&n| (0..n).map(|_| { next += 1; next }).collect()).collect();
            let total: usize = sizes.iter().sum();
            let plan = plan_messages(groups, tokens);
            prop_assert!(plan.len() <= tokens);
            let mut sent: Vec<usize> = plan.into_iter().flatten().collect();
            sent.sort();
            if tokens == 0 {
                prop_assert!(sent.is_empty());
            } else {
                prop_assert_eq!(sent, (1..=total).collect::<Vec<_>>());
            }
        }
    }
}
