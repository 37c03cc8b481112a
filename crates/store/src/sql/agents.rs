//! Agents, and the sealed credentials they run with.

use switchboard_domain::{Agent, Cursor, Id, NewAgent, Page, PageRequest, SealedCredential};

use super::{decode, first, owner_page, owner_page_sql, paginate};
use crate::db::{Db, Record, Tx};
use crate::{params, Result};

macro_rules! columns {
    () => {
        "id, name, description, servers, system_prompt, steps, conversation_id, created_at"
    };
}

macro_rules! credential_columns {
    () => {
        "user_id, server, key, ciphertext, nonce, key_version, updated_at"
    };
}

fn agent(mut r: Record) -> Result<Agent> {
    Ok(Agent {
        id: r.id()?,
        name: r.text()?,
        description: r.text()?,
        servers: r.json_as()?,
        system_prompt: r.text()?,
        steps: r.json_as()?,
        conversation_id: r.opt_id()?,
        created_at: r.time()?,
    })
}

/// A credential row with its owner.
fn credential(mut r: Record) -> Result<(Id, SealedCredential)> {
    let owner = r.id()?;
    Ok((
        owner,
        SealedCredential {
            server: r.text()?,
            key: r.text()?,
            ciphertext: r.blob()?,
            nonce: r.blob()?,
            key_version: r.int()?,
            updated_at: r.time()?,
        },
    ))
}

pub(super) async fn put_credentials<D: Db>(db: &D, owner: Id, items: &[SealedCredential]) -> Result<()> {
    let mut tx = db.begin().await?;
    for c in items {
        tx.execute(
            "INSERT INTO credentials (user_id, server, key, ciphertext, nonce, key_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (user_id, server, key) DO UPDATE SET ciphertext = excluded.ciphertext, \
               nonce = excluded.nonce, key_version = excluded.key_version, updated_at = excluded.updated_at",
            &params![owner, &c.server, &c.key, &c.ciphertext, &c.nonce, c.key_version, c.updated_at],
        )
        .await?;
    }
    tx.commit().await
}

pub(super) async fn credentials<D: Db>(db: &D, owner: Id, server: Option<&str>) -> Result<Vec<SealedCredential>> {
    const SQL: &str = concat!(
        "SELECT ",
        credential_columns!(),
        " FROM credentials WHERE user_id = $1 AND ($2 IS NULL OR server = $2) ORDER BY server, key"
    );
    decode(db.fetch(SQL, &params![owner, server]).await?, |r| credential(r).map(|(_, c)| c))
}

pub(super) async fn credentials_and_connected<D: Db>(
    db: &D,
    owner: Id,
) -> Result<(Vec<SealedCredential>, Vec<String>)> {
    // One read: the credential rows, and a row per connected account with only its server.
    const SQL: &str = concat!(
        "SELECT ",
        credential_columns!(),
        " FROM credentials WHERE user_id = $1 \
         UNION ALL SELECT user_id, server, NULL, NULL, NULL, NULL, NULL FROM connections WHERE user_id = $1 \
         ORDER BY server, key"
    );
    let (mut credentials, mut connected) = (Vec::new(), Vec::new());
    for mut row in db.fetch(SQL, &params![owner]).await? {
        if row.null_at(2) {
            row.id()?;
            connected.push(row.text()?);
        } else {
            credentials.push(credential(row)?.1);
        }
    }
    Ok((credentials, connected))
}

pub(super) async fn delete_credentials<D: Db>(db: &D, owner: Id, server: &str, key: Option<&str>) -> Result<u64> {
    db.execute(
        "DELETE FROM credentials WHERE user_id = $1 AND server = $2 AND ($3 IS NULL OR key = $3)",
        &params![owner, server, key],
    )
    .await
}

pub(super) async fn all_credentials<D: Db>(db: &D) -> Result<Vec<(Id, SealedCredential)>> {
    const SQL: &str = concat!("SELECT ", credential_columns!(), " FROM credentials ORDER BY user_id, server, key");
    decode(db.fetch(SQL, &[]).await?, credential)
}

pub(super) async fn reseal_credential<D: Db>(
    db: &D,
    owner: Id,
    old_ciphertext: &[u8],
    new: &SealedCredential,
) -> Result<bool> {
    let changed = db
        .execute(
            "UPDATE credentials SET ciphertext = $1, nonce = $2, key_version = $3 \
             WHERE user_id = $4 AND server = $5 AND key = $6 AND ciphertext = $7",
            &params![&new.ciphertext, &new.nonce, new.key_version, owner, &new.server, &new.key, old_ciphertext],
        )
        .await?;
    Ok(changed > 0)
}

pub(super) async fn create<D: Db>(db: &D, owner: Id, new: NewAgent) -> Result<Agent> {
    let id = switchboard_domain::new_id();
    let now = switchboard_domain::now();
    let servers = serde_json::json!(new.servers);
    let steps = serde_json::json!(new.steps);
    db.execute(
        "INSERT INTO agents (id, user_id, name, description, servers, system_prompt, steps, conversation_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &params![
            id,
            owner,
            &new.name,
            &new.description,
            &servers,
            &new.system_prompt,
            &steps,
            new.conversation_id,
            now
        ],
    )
    .await?;
    Ok(Agent {
        id,
        name: new.name,
        description: new.description,
        servers: new.servers,
        system_prompt: new.system_prompt,
        steps: new.steps,
        conversation_id: new.conversation_id,
        created_at: now,
    })
}

pub(super) async fn list<D: Db>(db: &D, owner: Id, page: PageRequest) -> Result<Page<Agent>> {
    const SQL: &str = owner_page_sql!("agents", columns!(), "created_at");
    let items = decode(owner_page(db, SQL, owner, &page).await?, agent)?;
    Ok(paginate(items, page.limit, |a: &Agent| Cursor { at: a.created_at, id: a.id }))
}

pub(super) async fn get<D: Db>(db: &D, owner: Id, id: Id) -> Result<Option<Agent>> {
    const SQL: &str = concat!("SELECT ", columns!(), " FROM agents WHERE user_id = $1 AND id = $2");
    first(db.fetch(SQL, &params![owner, id]).await?).map(agent).transpose()
}

pub(super) async fn delete<D: Db>(db: &D, owner: Id, id: Id) -> Result<bool> {
    Ok(db.execute("DELETE FROM agents WHERE user_id = $1 AND id = $2", &params![owner, id]).await? > 0)
}
