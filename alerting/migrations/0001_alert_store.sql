-- Tidewatch alert store. Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are milliseconds since the epoch (BIGINT); JSON documents are TEXT.

-- One row per alert; `body` is the alert as the API shows it (without history).
CREATE TABLE alerts (
    id BIGINT PRIMARY KEY,
    rule TEXT NOT NULL,
    station TEXT NOT NULL,
    quantity TEXT NOT NULL,
    region TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank BIGINT NOT NULL,
    fired_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    escalation_level BIGINT NOT NULL,
    next_escalation_at BIGINT,
    team TEXT,
    body TEXT NOT NULL
);
-- Exactly one open alert per (rule, sensor).
CREATE UNIQUE INDEX alerts_one_open ON alerts (rule, station, quantity) WHERE state <> 'resolved';
CREATE INDEX alerts_by_state ON alerts (state, changed_at);

-- Every change of every alert, in order: the alert's history.
CREATE TABLE alert_events (
    alert_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    happening TEXT NOT NULL,
    at BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (alert_id, seq)
);

-- Silences created over the API (maintenance windows from the duty file live there).
CREATE TABLE silences (
    id BIGINT PRIMARY KEY,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    deleted_at BIGINT,
    body TEXT NOT NULL
);

-- The transactional outbox: a row per (notice, channel), written in the same transaction
-- as the alert change it reports. The dispatcher sends what is pending and due.
CREATE TABLE outbox (
    id BIGINT PRIMARY KEY,
    alert_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    group_key TEXT NOT NULL,
    recipients TEXT NOT NULL,
    happening TEXT NOT NULL,
    notice TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    sent_at BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_pending ON outbox (status, due_at);
CREATE INDEX outbox_by_alert ON outbox (alert_id);

-- Every attempt to deliver, successful or not: the audit trail.
CREATE TABLE delivery_attempts (
    outbox_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (outbox_id, attempt)
);
