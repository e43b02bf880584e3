-- People and machines who may act on the API: users with a role, passwords hashed with
-- argon2 (PHC strings), and bearer tokens stored only as their SHA-256.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
