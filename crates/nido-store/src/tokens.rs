//! The HTTP API's bearer tokens (issue #15): only their hashes, with a role
//! and, for an owner's token, the owner it is bound to.
//!
//! Invariants: the token itself is never stored (the caller hashes it
//! first); a revoked or expired token is never returned by
//! [`SqlStore::token_by_hash`]; rows are never deleted.

use crate::batch::AuditConn;
use crate::sql::{on_pool, to_i64, to_u64};
use crate::{SqlStore, SqlStoreError};

/// A token's row, without the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its public id (shown in listings, used to revoke it).
    pub id: String,
    /// `operator` or `owner`.
    pub role: String,
    /// The owner an owner's token is bound to.
    pub owner: Option<String>,
    /// What it is for, as its creator said.
    pub label: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; none: never expires.
    pub expires_at: Option<u64>,
    /// Unix seconds it was revoked at.
    pub revoked_at: Option<u64>,
}

type TokenRow = (
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

fn record(r: TokenRow) -> Result<TokenRecord, SqlStoreError> {
    let (id, role, owner, label, created, expires, revoked) = r;
    Ok(TokenRecord {
        id,
        role,
        owner,
        label,
        created_at: to_u64(created, "time")?,
        expires_at: expires.map(|t| to_u64(t, "time")).transpose()?,
        revoked_at: revoked.map(|t| to_u64(t, "time")).transpose()?,
    })
}

impl SqlStore {
    /// Stores a new token's hash. An owner's token names an existing owner.
    pub fn create_token(&self, record: &TokenRecord, hash: &str) -> Result<(), SqlStoreError> {
        let created = to_i64(record.created_at, "time")?;
        let expires = record.expires_at.map(|t| to_i64(t, "time")).transpose()?;
        self.run(async {
            on_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await?;
                if let Some(owner) = &record.owner
                    && !(*tx).owner_exists(owner).await?
                {
                    return Err(SqlStoreError::Store(nido_net::StoreError::NotFound(
                        format!("owner {owner:?} (nido owner create first)"),
                    )));
                }
                sqlx::query(
                    "INSERT INTO api_tokens (id, hash, role, owner, label, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&record.id)
                .bind(hash)
                .bind(&record.role)
                .bind(&record.owner)
                .bind(&record.label)
                .bind(created)
                .bind(expires)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            })
        })
    }

    /// The live token with this hash at `now` (unix seconds): not revoked,
    /// not expired.
    pub fn token_by_hash(
        &self,
        hash: &str,
        now: u64,
    ) -> Result<Option<TokenRecord>, SqlStoreError> {
        let now = to_i64(now, "time")?;
        let row: Option<TokenRow> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT id, role, owner, label, created_at, expires_at, revoked_at \
                     FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(hash)
                .bind(now)
                .fetch_optional(p)
                .await?)
            })
        })?;
        row.map(record).transpose()
    }

    /// Revokes token `id` at `now`; false if there is no such live token.
    pub fn revoke_token(&self, id: &str, now: u64) -> Result<bool, SqlStoreError> {
        let now = to_i64(now, "time")?;
        let n = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(p)
                .await?
                .rows_affected())
            })
        })?;
        Ok(n > 0)
    }

    /// Every token (without the tokens), oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, SqlStoreError> {
        let rows: Vec<TokenRow> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT id, role, owner, label, created_at, expires_at, revoked_at \
                     FROM api_tokens ORDER BY created_at, id",
                )
                .fetch_all(p)
                .await?)
            })
        })?;
        rows.into_iter().map(record).collect()
    }

    /// Every owner's id and name (never its credentials), by id.
    pub fn owner_names(&self) -> Result<Vec<(String, String)>, SqlStoreError> {
        self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as("SELECT id, name FROM owners ORDER BY id")
                    .fetch_all(p)
                    .await?)
            })
        })
    }
}
