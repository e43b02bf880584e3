//! Who may act on the API: users with a role, their passwords (argon2) and bearer tokens.
//!
//! - viewer: reads;
//! - duty: a duty officer — acknowledges, resolves and comments alerts;
//! - analyst: silences (and, later, rules);
//! - admin: everything, users and tokens included.
//!
//! Tokens are 32 random bytes, shown once when made; the store keeps their SHA-256 only.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::store::{Context, Store, StoreError};

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Duty,
    Analyst,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Duty => "duty",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Duty, Role::Analyst, Role::Admin].into_iter().find(|r| r.name() == s)
    }

    /// Whether this role may do what `needed` allows: the same role, or admin.
    pub fn allows(self, needed: Role) -> bool {
        self == needed || self == Role::Admin || needed == Role::Viewer
    }
}

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
}

/// A user as `users list` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    pub tokens: i64,
    pub created_at: i64,
}

fn hash_password(password: &str) -> std::io::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| std::io::Error::other(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| std::io::Error::other(e.to_string()))?;
    let hash = Argon2::default().hash_password(password.as_bytes(), &salt);
    hash.map(|h| h.to_string()).map_err(|e| std::io::Error::other(e.to_string()))
}

/// A token's public name: the first hex digits of its hash.
const TOKEN_ID_LEN: usize = 16;

/// A token just made: shown once.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    /// Names the token (to list and revoke it).
    pub id: String,
    /// `Authorization: Bearer <token>`; not stored, not shown again.
    pub token: String,
    /// ms since the epoch, if it expires.
    pub expires_at: Option<i64>,
}

/// A token as listed: never the token itself.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: String,
    pub label: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random secret: `prefix` and 64 hex digits.
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    format!("{prefix}{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl Store {
    /// Adds a user, or changes an existing one's role and password.
    pub async fn put_user(&self, name: &str, role: Role, password: Option<&str>, now: i64) -> Result<(), StoreError> {
        let hash = match password {
            Some(p) => Some(hash_password(p).doing("hashing a password")?),
            None => None,
        };
        sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = COALESCE(excluded.password_hash, users.password_hash)",
        )
        .bind(name)
        .bind(role.name())
        .bind(hash)
        .bind(now)
        .execute(self.pool())
        .await
        .doing("writing a user")?;
        Ok(())
    }

    pub async fn user_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(self.pool()).await.doing("counting users")?;
        row.try_get(0).doing("counting users")
    }

    pub async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.name, u.role, u.created_at, (SELECT COUNT(*) FROM api_tokens t WHERE t.user_name = u.name) \
             FROM users u ORDER BY u.name",
        )
        .fetch_all(self.pool())
        .await
        .doing("listing users")?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get(1).doing("reading a user")?;
                Ok(UserRecord {
                    name: r.try_get(0).doing("reading a user")?,
                    role: Role::parse(&role).unwrap_or(Role::Viewer),
                    created_at: r.try_get(2).doing("reading a user")?,
                    tokens: r.try_get(3).doing("reading a user")?,
                })
            })
            .collect()
    }

    /// Makes a bearer token for `user`, valid until `expires_at` (ms) if given; the token
    /// itself is returned once and not kept. `None` when there is no such user.
    pub async fn new_token(
        &self,
        user: &str,
        label: &str,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<Option<NewToken>, StoreError> {
        if self.user(user).await?.is_none() {
            return Ok(None);
        }
        let token = random_secret("tw_");
        let hash = token_hash(&token);
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, user_name, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&hash)
        .bind(user)
        .bind(label)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await
        .doing("writing a token")?;
        Ok(Some(NewToken { id: hash[..TOKEN_ID_LEN].to_owned(), token, expires_at }))
    }

    /// A user's tokens (never the tokens themselves). `None` when there is no such user.
    pub async fn tokens(&self, user: &str) -> Result<Option<Vec<TokenRecord>>, StoreError> {
        if self.user(user).await?.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT token_hash, label, created_at, expires_at FROM api_tokens WHERE user_name = $1 ORDER BY created_at",
        )
        .bind(user)
        .fetch_all(self.pool())
        .await
        .doing("listing tokens")?;
        let tokens = rows
            .iter()
            .map(|r| {
                let hash: String = r.try_get(0).doing("reading a token")?;
                Ok(TokenRecord {
                    id: hash[..TOKEN_ID_LEN.min(hash.len())].to_owned(),
                    label: r.try_get(1).doing("reading a token")?,
                    created_at: r.try_get(2).doing("reading a token")?,
                    expires_at: r.try_get(3).doing("reading a token")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Some(tokens))
    }

    /// Revokes a token given itself (a console session at logout).
    pub async fn revoke_session(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash(token))
            .execute(self.pool())
            .await
            .doing("ending a session")?;
        Ok(())
    }

    /// Revokes the token with this id; false when there is none.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        if id.len() != TOKEN_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Ok(false);
        }
        let done = sqlx::query("DELETE FROM api_tokens WHERE token_hash LIKE $1")
            .bind(format!("{id}%"))
            .execute(self.pool())
            .await
            .doing("revoking a token")?;
        Ok(done.rows_affected() > 0)
    }

    async fn user(&self, name: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
        let row = sqlx::query("SELECT name, role, password_hash FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .doing("reading a user")?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.try_get(1).doing("reading a user")?;
        let user =
            User { name: row.try_get(0).doing("reading a user")?, role: Role::parse(&role).unwrap_or(Role::Viewer) };
        Ok(Some((user, row.try_get(2).doing("reading a user")?)))
    }

    /// The user a password belongs to, if it is theirs.
    pub async fn check_password(&self, name: &str, password: &str) -> Result<Option<User>, StoreError> {
        let Some((user, Some(hash))) = self.user(name).await? else { return Ok(None) };
        let ok =
            PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        Ok(ok.then_some(user))
    }

    /// The user a bearer token belongs to, unless it has expired by `now` (ms).
    pub async fn check_token(&self, token: &str, now: i64) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT user_name, expires_at FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash(token))
            .fetch_optional(self.pool())
            .await
            .doing("reading a token")?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: Option<i64> = row.try_get(1).doing("reading a token")?;
        if expires_at.is_some_and(|at| at <= now) {
            return Ok(None);
        }
        let name: String = row.try_get(0).doing("reading a token")?;
        Ok(self.user(&name).await?.map(|(u, _)| u))
    }
}
