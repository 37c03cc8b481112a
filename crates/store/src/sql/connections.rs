//! Accounts connected with OAuth, authorizations in progress, and registered clients.

use switchboard_domain::{Connection, ConnectionStatus, Id, OAuthFlow, RegisteredClient, Sealed};

use super::{decode, first};
use crate::db::{Db, Record, Tx};
use crate::{params, Result, StoreError};

macro_rules! columns {
    () => {
        "server, status, scopes, ciphertext, nonce, key_version, expires_at, method, version, created_at, updated_at"
    };
}

fn connection(mut r: Record) -> Result<Connection> {
    let server = r.text()?;
    let status = r.text()?;
    let status = ConnectionStatus::parse(&status)
        .ok_or_else(|| StoreError::Decode(format!("unknown connection status {status:?}")))?;
    Ok(Connection {
        server,
        status,
        scopes: r.json_as()?,
        tokens: Sealed { ciphertext: r.blob()?, nonce: r.blob()? },
        key_version: r.int()?,
        expires_at: r.opt_time()?,
        method: r.json()?,
        version: r.int()?,
        created_at: r.time()?,
        updated_at: r.time()?,
    })
}

pub(super) async fn put<D: Db>(db: &D, owner: Id, c: &Connection) -> Result<Connection> {
    const SQL: &str = concat!(
        "INSERT INTO connections (user_id, ",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10) \
         ON CONFLICT (user_id, server) DO UPDATE SET status = excluded.status, scopes = excluded.scopes, \
           ciphertext = excluded.ciphertext, nonce = excluded.nonce, key_version = excluded.key_version, \
           expires_at = excluded.expires_at, method = excluded.method, version = connections.version + 1, \
           updated_at = excluded.updated_at \
         RETURNING ",
        columns!()
    );
    let scopes = serde_json::json!(c.scopes);
    let rows = db
        .execute_returning(
            SQL,
            &params![
                owner,
                &c.server,
                c.status.as_str(),
                &scopes,
                &c.tokens.ciphertext,
                &c.tokens.nonce,
                c.key_version,
                c.expires_at,
                &c.method,
                switchboard_domain::now()
            ],
        )
        .await?;
    first(rows).map(connection).transpose()?.ok_or_else(|| StoreError::Decode("no connection row".into()))
}

pub(super) async fn get<D: Db>(db: &D, owner: Id, server: &str) -> Result<Option<Connection>> {
    const SQL: &str = concat!("SELECT ", columns!(), " FROM connections WHERE user_id = $1 AND server = $2");
    first(db.fetch(SQL, &params![owner, server]).await?).map(connection).transpose()
}

pub(super) async fn list<D: Db>(db: &D, owner: Id) -> Result<Vec<Connection>> {
    const SQL: &str = concat!("SELECT ", columns!(), " FROM connections WHERE user_id = $1 ORDER BY server");
    decode(db.fetch(SQL, &params![owner]).await?, connection)
}

pub(super) async fn all<D: Db>(db: &D) -> Result<Vec<(Id, Connection)>> {
    const SQL: &str = concat!("SELECT user_id, ", columns!(), " FROM connections ORDER BY user_id, server");
    decode(db.fetch(SQL, &[]).await?, |mut r| Ok((r.id()?, connection(r)?)))
}

pub(super) async fn update<D: Db>(db: &D, owner: Id, expected_version: i64, c: &Connection) -> Result<bool> {
    let scopes = serde_json::json!(c.scopes);
    let changed = db
        .execute(
            "UPDATE connections SET status = $1, scopes = $2, ciphertext = $3, nonce = $4, key_version = $5, \
               expires_at = $6, method = $7, version = version + 1, updated_at = $8 \
             WHERE user_id = $9 AND server = $10 AND version = $11",
            &params![
                c.status.as_str(),
                &scopes,
                &c.tokens.ciphertext,
                &c.tokens.nonce,
                c.key_version,
                c.expires_at,
                &c.method,
                switchboard_domain::now(),
                owner,
                &c.server,
                expected_version
            ],
        )
        .await?;
    Ok(changed > 0)
}

pub(super) async fn delete<D: Db>(db: &D, owner: Id, server: &str) -> Result<Option<Connection>> {
    const SQL: &str = concat!("DELETE FROM connections WHERE user_id = $1 AND server = $2 RETURNING ", columns!());
    first(db.execute_returning(SQL, &params![owner, server]).await?).map(connection).transpose()
}

pub(super) async fn put_flow<D: Db>(db: &D, flow: &OAuthFlow) -> Result<()> {
    let scopes = serde_json::json!(flow.scopes);
    let mut tx = db.begin().await?;
    tx.execute(
        "INSERT INTO oauth_flows (state_hash, user_id, server, ciphertext, nonce, scopes, method, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &params![
            &flow.state_hash,
            flow.user_id,
            &flow.server,
            &flow.verifier.ciphertext,
            &flow.verifier.nonce,
            &scopes,
            &flow.method,
            flow.created_at,
            flow.expires_at
        ],
    )
    .await?;
    tx.execute("DELETE FROM oauth_flows WHERE expires_at < $1", &params![flow.created_at]).await?;
    tx.commit().await
}

pub(super) async fn take_flow<D: Db>(db: &D, state_hash: &str) -> Result<Option<OAuthFlow>> {
    let rows = db
        .execute_returning(
            "DELETE FROM oauth_flows WHERE state_hash = $1 \
             RETURNING state_hash, user_id, server, ciphertext, nonce, scopes, method, created_at, expires_at",
            &params![state_hash],
        )
        .await?;
    first(rows)
        .map(|mut r| {
            Ok(OAuthFlow {
                state_hash: r.text()?,
                user_id: r.id()?,
                server: r.text()?,
                verifier: Sealed { ciphertext: r.blob()?, nonce: r.blob()? },
                scopes: r.json_as()?,
                method: r.json()?,
                created_at: r.time()?,
                expires_at: r.time()?,
            })
        })
        .transpose()
}

pub(super) async fn put_client<D: Db>(db: &D, client: &RegisteredClient) -> Result<()> {
    let (ciphertext, nonce) = match &client.client_secret {
        Some(s) => (Some(&s.ciphertext), Some(&s.nonce)),
        None => (None, None),
    };
    db.execute(
        "INSERT INTO oauth_clients (issuer, redirect_uri, client_id, ciphertext, nonce, auth_method, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (issuer, redirect_uri) DO UPDATE SET client_id = excluded.client_id, \
           ciphertext = excluded.ciphertext, nonce = excluded.nonce, auth_method = excluded.auth_method, \
           created_at = excluded.created_at",
        &params![
            &client.issuer,
            &client.redirect_uri,
            &client.client_id,
            ciphertext,
            nonce,
            &client.auth_method,
            client.created_at
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn client<D: Db>(db: &D, issuer: &str, redirect_uri: &str) -> Result<Option<RegisteredClient>> {
    let rows = db
        .fetch(
            "SELECT issuer, redirect_uri, client_id, ciphertext, nonce, auth_method, created_at FROM oauth_clients \
             WHERE issuer = $1 AND redirect_uri = $2",
            &params![issuer, redirect_uri],
        )
        .await?;
    first(rows)
        .map(|mut r| {
            let (issuer, redirect_uri, client_id) = (r.text()?, r.text()?, r.text()?);
            let secret = match (r.opt_blob()?, r.opt_blob()?) {
                (Some(ciphertext), Some(nonce)) => Some(Sealed { ciphertext, nonce }),
                _ => None,
            };
            Ok(RegisteredClient {
                issuer,
                redirect_uri,
                client_id,
                client_secret: secret,
                auth_method: r.text()?,
                created_at: r.time()?,
            })
        })
        .transpose()
}
