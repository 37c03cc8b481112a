//! Users, created on first sight, and revoked tokens.

use chrono::{DateTime, Utc};
use switchboard_domain::{Cursor, Page, PageRequest, User};

use super::{decode, keyset, paginate, single, window};
use crate::db::{Db, Record, Tx};
use crate::{params, Identity, Result};

macro_rules! columns {
    () => {
        "id, issuer, subject, email, name, created_at"
    };
}

fn user(mut r: Record) -> Result<User> {
    Ok(User {
        id: r.id()?,
        issuer: r.text()?,
        subject: r.text()?,
        email: r.opt_text()?,
        name: r.opt_text()?,
        created_at: r.time()?,
    })
}

pub(super) async fn upsert<D: Db>(db: &D, who: Identity<'_>) -> Result<User> {
    const SQL: &str = concat!(
        "INSERT INTO users (id, issuer, subject, email, name, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (issuer, subject) DO UPDATE SET \
           email = COALESCE(excluded.email, users.email), \
           name = COALESCE(excluded.name, users.name), \
           updated_at = excluded.updated_at \
         RETURNING ",
        columns!()
    );
    let now = switchboard_domain::now();
    let rows = db
        .execute_returning(
            SQL,
            &params![switchboard_domain::new_id(), who.issuer, who.subject, who.email, who.name, now],
        )
        .await?;
    user(single(rows)?)
}

pub(super) async fn list<D: Db>(db: &D, page: PageRequest) -> Result<Page<User>> {
    const SQL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM users WHERE ($1 IS NULL OR (created_at, id) > ($1, $2)) \
         ORDER BY created_at, id LIMIT $3 OFFSET $4"
    );
    let (after, after_id) = keyset(&page);
    let (limit, offset) = window(&page);
    let users = decode(db.fetch(SQL, &params![after, after_id, limit, offset]).await?, user)?;
    Ok(paginate(users, page.limit, |u: &User| Cursor { at: u.created_at, id: u.id }))
}

pub(super) async fn revoke_token<D: Db>(db: &D, jti: &str, expires_at: DateTime<Utc>) -> Result<()> {
    let mut tx = db.begin().await?;
    tx.execute(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        &params![jti, expires_at],
    )
    .await?;
    tx.execute("DELETE FROM revoked_tokens WHERE expires_at < $1", &params![switchboard_domain::now()]).await?;
    tx.commit().await
}

pub(super) async fn revoked_tokens<D: Db>(db: &D) -> Result<Vec<String>> {
    let rows =
        db.fetch("SELECT jti FROM revoked_tokens WHERE expires_at >= $1", &params![switchboard_domain::now()]).await?;
    decode(rows, |mut r| r.text())
}
