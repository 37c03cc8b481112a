//! Accounts connected with OAuth instead of pasted keys: the authorization code flow with PKCE
//! and a single-use state bound to the user, tokens sealed by the vault, refreshed before they
//! expire when a server needs them, revoked when the person disconnects.
//!
//! Two kinds of connection (see [`OAuthMethod`]): a provider the operator has an OAuth client for
//! (GitHub, Slack, Google…), whose tokens fill credential keys; and a remote MCP server speaking
//! the MCP authorization specification, whose authorization server is discovered from the
//! server's `WWW-Authenticate` challenge and protected resource metadata, with a client
//! registered dynamically where the server allows, and whose token is sent as its bearer. The
//! caller's Switchboard token is never sent anywhere.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchboard_catalog::{Catalog, CatalogEntry, CatalogError, Launch, OAuthMethod};
use switchboard_domain::{Connection, ConnectionStatus, Id, OAuthFlow, RegisteredClient, Sealed};
use switchboard_oauth::{AuthorizationRequest, Client, ClientAuth, Http, OAuthError, Pkce, TokenSet};
use switchboard_store::{Store, StoreError};
use switchboard_vault::{Binding, Keyring, VaultError};
use utoipa::ToSchema;

/// How long a person has to come back from the provider.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// An access token this close to expiring is refreshed before use.
const REFRESH_AHEAD: Duration = Duration::from_secs(60);
/// The vault binding keys of what is sealed here.
const TOKENS_KEY: &str = "oauth-tokens";
const VERIFIER_KEY: &str = "oauth-verifier";
const CLIENT_SECRET_KEY: &str = "oauth-client-secret";

/// An OAuth client the operator registered with a provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderClient {
    /// The name catalog entries use for it (`OAuthMethod::client`): "github", "google"…
    pub name: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// `client_secret_post` (default) or `client_secret_basic`.
    #[serde(default)]
    pub auth: Option<ClientAuth>,
    /// For remote MCP servers whose authorization server offers no registration: the issuer
    /// this client belongs to.
    #[serde(default)]
    pub issuer: Option<String>,
}

impl ProviderClient {
    fn client(&self) -> Client {
        let auth = match (&self.client_secret, self.auth) {
            (None, _) => ClientAuth::None,
            (Some(_), Some(auth)) => auth,
            (Some(_), None) => ClientAuth::ClientSecretPost,
        };
        Client { client_id: self.client_id.clone(), client_secret: self.client_secret.clone(), auth }
    }
}

/// Why connecting failed. Never carries a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    #[error("no server {0:?} in the catalog")]
    UnknownServer(String),
    #[error("{server} cannot be connected with OAuth: {reason}")]
    NotConnectable { server: String, reason: String },
    #[error("{server} is connected through the {client} OAuth client, which this Switchboard has not configured")]
    NoClient { server: String, client: String },
    #[error("{server} offers no scope {scope:?}")]
    UnknownScope { server: String, scope: String },
    #[error("this sign-in link is unknown or was used already; start again")]
    UnknownFlow,
    #[error("this sign-in link expired; start again")]
    ExpiredFlow,
    #[error("{server}'s authorization server refused: {reason}")]
    Refused { server: String, reason: String },
    #[error("{server}'s authorization server could not be reached: {reason}")]
    Unavailable { server: String, reason: String },
    #[error("{server} needs to be connected again")]
    NeedsConsent { server: String },
    #[error("no connection to {0}")]
    NotConnected(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// How a flow finishes and a connection refreshes and revokes, kept with each (as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Method {
    token_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revocation_endpoint: Option<String>,
    client: ClientRef,
    /// The protected resource the tokens are for (MCP servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    redirect_uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ClientRef {
    /// The operator's client of this name.
    Configured(String),
    /// The client registered with this issuer.
    Registered(String),
}

/// One scope as the person sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScopeView {
    pub name: String,
    pub description: String,
    pub required: bool,
    /// Granted by the current connection.
    pub granted: bool,
}

/// What connecting a server involves.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScopesView {
    pub server: String,
    pub slug: String,
    /// `provider` (an account with a provider) or `mcp` (the server's own authorization).
    pub kind: &'static str,
    pub scopes: Vec<ScopeView>,
    /// `connected`, `needs_consent` or `not_connected`.
    pub status: &'static str,
}

/// A connection as listed: never its tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionView {
    pub server: String,
    pub slug: String,
    /// `connected` or `needs_consent`.
    pub status: &'static str,
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub refreshable: bool,
    pub connected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A started authorization: where to send the person.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Authorization {
    pub server: String,
    pub auth_url: String,
    pub expires_at: DateTime<Utc>,
}

/// What a connection gives a server when it starts.
#[derive(Default)]
pub struct Provided {
    /// Values of the credential keys the connection fills.
    pub values: BTreeMap<String, SecretString>,
    /// The bearer token for a remote MCP server's own authorization.
    pub bearer: Option<SecretString>,
}

/// The sealed document of a connection's tokens.
#[derive(Serialize, Deserialize)]
struct Tokens {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// Held while one connection's tokens are refreshed.
type RefreshLock = Arc<tokio::sync::Mutex<()>>;

/// Connections over the store, the vault, the catalog and the outbound rules.
#[derive(Clone)]
pub struct Connections {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    catalog: Catalog,
    http: Http,
    clients: Arc<Vec<ProviderClient>>,
    redirect_uri: Arc<str>,
    /// One refresh at a time per connection in this process.
    refreshing: Arc<Mutex<HashMap<(Id, String), RefreshLock>>>,
}

impl Connections {
    /// `redirect_uri` is this server's public callback URL (`…/api/v1/oauth/callback`).
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        catalog: Catalog,
        http: Http,
        clients: Vec<ProviderClient>,
        redirect_uri: String,
    ) -> Connections {
        Connections {
            store,
            keyring,
            catalog,
            http,
            clients: Arc::new(clients),
            redirect_uri: redirect_uri.into(),
            refreshing: Arc::default(),
        }
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    async fn entry(&self, server: &str) -> Result<Arc<CatalogEntry>, ConnectionError> {
        self.catalog.get(server).await?.ok_or_else(|| ConnectionError::UnknownServer(server.to_owned()))
    }

    /// The entry's way of connecting: its declared method, or — for a remote server that
    /// declares none — the MCP authorization specification.
    fn method_of(entry: &CatalogEntry) -> Option<OAuthMethod> {
        match (&entry.oauth, &entry.launch) {
            (Some(method), _) => Some(method.clone()),
            (None, Some(Launch::Remote { .. })) => Some(OAuthMethod {
                client: None,
                issuer: None,
                authorization_endpoint: None,
                token_endpoint: None,
                revocation_endpoint: None,
                scopes: Vec::new(),
                access_token_key: None,
                refresh_token_key: None,
                client_id_key: None,
                client_secret_key: None,
                extra_params: BTreeMap::new(),
            }),
            _ => None,
        }
    }

    /// Whether connecting the entry can work here: a declared provider whose client is
    /// configured, or a server speaking the MCP authorization specification.
    pub fn can_connect(&self, entry: &CatalogEntry) -> bool {
        match entry.oauth.as_ref() {
            Some(OAuthMethod { client: Some(name), .. }) => self.provider(name).is_some(),
            Some(_) => matches!(entry.launch, Some(Launch::Remote { .. })),
            None => false,
        }
    }

    fn provider(&self, name: &str) -> Option<&ProviderClient> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// What can be granted, and what is.
    pub async fn scopes(&self, owner: Id, server: &str) -> Result<ScopesView, ConnectionError> {
        let entry = self.entry(server).await?;
        let method = Self::method_of(&entry).ok_or_else(|| not_connectable(&entry, "it declares no OAuth method"))?;
        let current = self.store.connection(owner, &entry.slug).await?;
        let granted: Vec<String> = current.as_ref().map(|c| c.scopes.clone()).unwrap_or_default();
        Ok(ScopesView {
            server: entry.name.clone(),
            slug: entry.slug.clone(),
            kind: if method.is_mcp_authorization() { "mcp" } else { "provider" },
            scopes: method
                .scopes
                .iter()
                .map(|s| ScopeView {
                    name: s.name.clone(),
                    description: s.description.clone(),
                    required: s.required,
                    granted: granted.contains(&s.name),
                })
                .collect(),
            status: current.map_or("not_connected", |c| c.status.as_str()),
        })
    }

    /// Starts connecting: records the flow and answers the provider's URL to send the person to.
    /// `scopes` must be offered by the entry; its required ones are always asked for (and, when
    /// it marks none required and none are asked for, everything it offers).
    pub async fn start(
        &self,
        owner: Id,
        server: &str,
        scopes: Option<&[String]>,
    ) -> Result<Authorization, ConnectionError> {
        let entry = self.entry(server).await?;
        let method = Self::method_of(&entry).ok_or_else(|| not_connectable(&entry, "it declares no OAuth method"))?;
        let (endpoints, client_ref, client, resource, mut asked) = match &method.client {
            Some(name) => {
                let provider = self
                    .provider(name)
                    .ok_or_else(|| ConnectionError::NoClient { server: entry.name.clone(), client: name.clone() })?;
                let endpoints = self.provider_endpoints(&entry, &method).await?;
                (endpoints, ClientRef::Configured(name.clone()), provider.client(), None, Vec::new())
            }
            None => self.mcp_authorization(&entry).await?,
        };
        let offered: Vec<&str> = method.scopes.iter().map(|s| s.name.as_str()).collect();
        for scope in scopes.unwrap_or_default() {
            if !offered.is_empty() && !offered.contains(&scope.as_str()) {
                return Err(ConnectionError::UnknownScope { server: entry.name.clone(), scope: scope.clone() });
            }
            if !asked.contains(scope) {
                asked.push(scope.clone());
            }
        }
        // Least privilege: the required scopes, plus those asked for; everything offered only
        // when nothing is marked required and nothing was asked for.
        let none_required = !method.scopes.iter().any(|s| s.required);
        let required =
            method.scopes.iter().filter(|s| s.required || (none_required && scopes.is_none())).map(|s| &s.name);
        for scope in required {
            if !asked.contains(scope) {
                asked.push(scope.clone());
            }
        }
        let state = switchboard_oauth::random_token();
        let pkce = Pkce::new();
        let url = AuthorizationRequest {
            authorization_endpoint: &endpoints.authorization_endpoint,
            client_id: &client.client_id,
            redirect_uri: &self.redirect_uri,
            scopes: &asked,
            state: &state,
            code_challenge: &pkce.challenge,
            resource: resource.as_deref(),
            extra: &method.extra_params,
        }
        .url()
        .map_err(|e| not_connectable(&entry, &e.to_string()))?;
        let stored = Method {
            token_endpoint: endpoints.token_endpoint,
            revocation_endpoint: endpoints.revocation_endpoint,
            client: client_ref,
            resource,
            redirect_uri: self.redirect_uri.to_string(),
        };
        let now = switchboard_domain::now();
        let expires_at = now + FLOW_LIFETIME;
        let verifier =
            self.keyring.seal(Binding { owner, server: &entry.slug, key: VERIFIER_KEY }, pkce.verifier.expose_secret());
        self.store
            .put_oauth_flow(&OAuthFlow {
                state_hash: hash(&state),
                user_id: owner,
                server: entry.slug.clone(),
                verifier: Sealed { ciphertext: verifier.ciphertext, nonce: verifier.nonce },
                scopes: asked,
                method: serde_json::to_value(&stored).expect("a method serializes"),
                created_at: now,
                expires_at,
            })
            .await?;
        tracing::info!(server = %entry.slug, "OAuth authorization started");
        Ok(Authorization { server: entry.name.clone(), auth_url: url, expires_at })
    }

    /// A declared provider's endpoints: as given, or from its issuer's metadata.
    async fn provider_endpoints(
        &self,
        entry: &CatalogEntry,
        method: &OAuthMethod,
    ) -> Result<switchboard_oauth::AuthServer, ConnectionError> {
        if let (Some(authorization), Some(token)) = (&method.authorization_endpoint, &method.token_endpoint) {
            return Ok(switchboard_oauth::AuthServer {
                issuer: method.issuer.clone().unwrap_or_default(),
                authorization_endpoint: authorization.clone(),
                token_endpoint: token.clone(),
                revocation_endpoint: method.revocation_endpoint.clone(),
                registration_endpoint: None,
                scopes_supported: Vec::new(),
                code_challenge_methods_supported: Vec::new(),
            });
        }
        let issuer = method
            .issuer
            .as_deref()
            .ok_or_else(|| not_connectable(entry, "it names neither endpoints nor an issuer"))?;
        let mut found = switchboard_oauth::discover(&self.http, issuer).await.map_err(|e| oauth_error(entry, e))?;
        if method.revocation_endpoint.is_some() {
            found.revocation_endpoint = method.revocation_endpoint.clone();
        }
        Ok(found)
    }

    /// A remote MCP server's own authorization: its challenge, protected resource metadata and
    /// authorization server; a registered client (or registered now, or the operator's for that
    /// issuer). Returns the endpoints, the client, the resource and the scopes the server asked for.
    async fn mcp_authorization(
        &self,
        entry: &CatalogEntry,
    ) -> Result<(switchboard_oauth::AuthServer, ClientRef, Client, Option<String>, Vec<String>), ConnectionError> {
        let Some(Launch::Remote { url, .. }) = &entry.launch else {
            return Err(not_connectable(entry, "it is not a remote server"));
        };
        if url.contains("${") {
            return Err(not_connectable(entry, "its address depends on credentials"));
        }
        let challenge = self.http.probe(url).await.map_err(|e| oauth_error(entry, e))?;
        let (resource, server) = switchboard_oauth::discover_from_challenge(&self.http, url, challenge.as_deref())
            .await
            .map_err(|e| oauth_error(entry, e))?;
        let scopes: Vec<String> = challenge
            .as_deref()
            .and_then(switchboard_oauth::parse_challenge)
            .and_then(|c| c.scope)
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_else(|| resource.scopes_supported.clone());
        let (client_ref, client) = self.registered_client(entry, &server).await?;
        Ok((server, client_ref, client, Some(resource.resource), scopes))
    }

    /// The client for an authorization server: registered before, the operator's for this
    /// issuer, or registered now (RFC 7591).
    async fn registered_client(
        &self,
        entry: &CatalogEntry,
        server: &switchboard_oauth::AuthServer,
    ) -> Result<(ClientRef, Client), ConnectionError> {
        if let Some(provider) = self.clients.iter().find(|c| c.issuer.as_deref() == Some(server.issuer.as_str())) {
            return Ok((ClientRef::Configured(provider.name.clone()), provider.client()));
        }
        if let Some(known) = self.store.registered_client(&server.issuer, &self.redirect_uri).await? {
            return Ok((ClientRef::Registered(server.issuer.clone()), self.open_client(&known)?));
        }
        let endpoint = server.registration_endpoint.as_deref().ok_or_else(|| {
            not_connectable(
                entry,
                "its authorization server offers no client registration and no client is configured for it",
            )
        })?;
        let client =
            self.http.register(endpoint, &self.redirect_uri, "Switchboard").await.map_err(|e| oauth_error(entry, e))?;
        let secret = client.client_secret.as_ref().map(|s| {
            let sealed = self
                .keyring
                .seal(Binding { owner: Id::nil(), server: &server.issuer, key: CLIENT_SECRET_KEY }, s.expose_secret());
            Sealed { ciphertext: sealed.ciphertext, nonce: sealed.nonce }
        });
        self.store
            .put_registered_client(&RegisteredClient {
                issuer: server.issuer.clone(),
                redirect_uri: self.redirect_uri.to_string(),
                client_id: client.client_id.clone(),
                client_secret: secret,
                auth_method: auth_name(client.auth).into(),
                created_at: switchboard_domain::now(),
            })
            .await?;
        tracing::info!(issuer = %server.issuer, "registered an OAuth client");
        Ok((ClientRef::Registered(server.issuer.clone()), client))
    }

    fn open_client(&self, known: &RegisteredClient) -> Result<Client, ConnectionError> {
        let secret = match &known.client_secret {
            Some(sealed) => Some(self.keyring.open(
                Binding { owner: Id::nil(), server: &known.issuer, key: CLIENT_SECRET_KEY },
                &switchboard_vault::Sealed { ciphertext: sealed.ciphertext.clone(), nonce: sealed.nonce.clone() },
            )?),
            None => None,
        };
        let auth = match known.auth_method.as_str() {
            "client_secret_basic" => ClientAuth::ClientSecretBasic,
            "client_secret_post" => ClientAuth::ClientSecretPost,
            _ => ClientAuth::None,
        };
        Ok(Client { client_id: known.client_id.clone(), client_secret: secret, auth })
    }

    async fn client_of(&self, method: &Method) -> Result<Client, ConnectionError> {
        match &method.client {
            ClientRef::Configured(name) => self
                .provider(name)
                .map(ProviderClient::client)
                .ok_or_else(|| ConnectionError::NoClient { server: String::new(), client: name.clone() }),
            ClientRef::Registered(issuer) => {
                let known = self
                    .store
                    .registered_client(issuer, &method.redirect_uri)
                    .await?
                    .ok_or_else(|| ConnectionError::NotConnected(issuer.clone()))?;
                self.open_client(&known)
            }
        }
    }

    /// The person came back without a code (they declined, or the provider failed): the flow is
    /// used up. The server's name, when the state was known.
    pub async fn abandon(&self, state: &str) -> Result<Option<String>, ConnectionError> {
        let Some(flow) = self.store.take_oauth_flow(&hash(state)).await? else { return Ok(None) };
        Ok(Some(self.catalog.get(&flow.server).await?.map_or(flow.server, |e| e.name.clone())))
    }

    /// The person came back with a code: exchanges it (once: the state is taken) and stores the
    /// tokens. Returns the owner and the server's name.
    pub async fn finish(&self, state: &str, code: &str) -> Result<(Id, String), ConnectionError> {
        let flow = self.store.take_oauth_flow(&hash(state)).await?.ok_or(ConnectionError::UnknownFlow)?;
        if flow.expires_at < switchboard_domain::now() {
            return Err(ConnectionError::ExpiredFlow);
        }
        let entry = self.entry(&flow.server).await?;
        let method: Method = serde_json::from_value(flow.method.clone())
            .map_err(|e| StoreError::Decode(format!("an OAuth flow's method: {e}")))?;
        let verifier = self.keyring.open(
            Binding { owner: flow.user_id, server: &flow.server, key: VERIFIER_KEY },
            &switchboard_vault::Sealed { ciphertext: flow.verifier.ciphertext, nonce: flow.verifier.nonce },
        )?;
        let client = self.client_of(&method).await?;
        let tokens = self
            .http
            .exchange_code(
                &method.token_endpoint,
                &client,
                code,
                &verifier,
                &method.redirect_uri,
                method.resource.as_deref(),
            )
            .await
            .map_err(|e| oauth_error(&entry, e))?;
        let scopes = tokens.scope.clone().unwrap_or(flow.scopes);
        let connection = self.sealed(flow.user_id, &entry.slug, &tokens, None, scopes, &method);
        self.store.put_connection(flow.user_id, &connection).await?;
        tracing::info!(server = %entry.slug, "account connected");
        Ok((flow.user_id, entry.name.clone()))
    }

    fn sealed(
        &self,
        owner: Id,
        slug: &str,
        tokens: &TokenSet,
        previous_refresh: Option<String>,
        scopes: Vec<String>,
        method: &Method,
    ) -> Connection {
        let document = Tokens {
            access_token: tokens.access_token.expose_secret().to_owned(),
            refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose_secret().to_owned()).or(previous_refresh),
        };
        let plain = SecretString::from(serde_json::to_string(&document).expect("tokens serialize"));
        let sealed = self.keyring.seal(Binding { owner, server: slug, key: TOKENS_KEY }, plain.expose_secret());
        let now = switchboard_domain::now();
        Connection {
            server: slug.to_owned(),
            status: ConnectionStatus::Connected,
            scopes,
            key_version: i64::from(sealed.key_id().expect("freshly sealed")),
            tokens: Sealed { ciphertext: sealed.ciphertext, nonce: sealed.nonce },
            expires_at: tokens.expires_in.map(|s| now + Duration::from_secs(s)),
            method: serde_json::to_value(method).expect("a method serializes"),
            version: 0,
            created_at: now,
            updated_at: now,
        }
    }

    fn open_tokens(&self, owner: Id, connection: &Connection) -> Result<Tokens, ConnectionError> {
        let plain = self.keyring.open(
            Binding { owner, server: &connection.server, key: TOKENS_KEY },
            &switchboard_vault::Sealed {
                ciphertext: connection.tokens.ciphertext.clone(),
                nonce: connection.tokens.nonce.clone(),
            },
        )?;
        serde_json::from_str(plain.expose_secret())
            .map_err(|_| ConnectionError::Store(StoreError::Decode("a connection's tokens".into())))
    }

    /// The owner's connections; never their tokens.
    pub async fn list(&self, owner: Id) -> Result<Vec<ConnectionView>, ConnectionError> {
        let mut out = Vec::new();
        for c in self.store.connections(owner).await? {
            let name = self.catalog.get(&c.server).await?.map_or(c.server.clone(), |e| e.name.clone());
            let refreshable = self.open_tokens(owner, &c).map(|t| t.refresh_token.is_some()).unwrap_or(false);
            out.push(ConnectionView {
                server: name,
                slug: c.server.clone(),
                status: c.status.as_str(),
                scopes: c.scopes.clone(),
                expires_at: c.expires_at,
                refreshable,
                connected_at: c.created_at,
                updated_at: c.updated_at,
            });
        }
        Ok(out)
    }

    /// The connection's state for one server, if there is one.
    pub async fn status(&self, owner: Id, slug: &str) -> Result<Option<ConnectionStatus>, ConnectionError> {
        Ok(self.store.connection(owner, slug).await?.map(|c| c.status))
    }

    /// Forgets the connection, revoking its tokens where the provider supports it (a revocation
    /// that fails is logged; the tokens are forgotten anyway). `false` when there was none.
    pub async fn delete(&self, owner: Id, server: &str) -> Result<bool, ConnectionError> {
        let entry = self.entry(server).await?;
        let Some(connection) = self.store.delete_connection(owner, &entry.slug).await? else { return Ok(false) };
        let Ok(method) = serde_json::from_value::<Method>(connection.method.clone()) else { return Ok(true) };
        if let (Some(endpoint), Ok(tokens), Ok(client)) =
            (&method.revocation_endpoint, self.open_tokens(owner, &connection), self.client_of(&method).await)
        {
            let (token, hint) = match tokens.refresh_token {
                Some(refresh) => (SecretString::from(refresh), "refresh_token"),
                None => (SecretString::from(tokens.access_token), "access_token"),
            };
            if let Err(e) = self.http.revoke(endpoint, &client, &token, hint).await {
                tracing::warn!(server = %entry.slug, error = %e, "revoking the connection's token failed");
            }
        }
        tracing::info!(server = %entry.slug, "connection removed");
        Ok(true)
    }

    /// What the owner's connection gives this server when it starts (nothing when there is
    /// none), refreshing the access token first if it is about to expire. A refresh the
    /// provider refuses marks the connection as needing consent again.
    pub async fn provide(&self, owner: Id, entry: &CatalogEntry) -> Result<Provided, ConnectionError> {
        let Some(method) = Self::method_of(entry) else { return Ok(Provided::default()) };
        let Some(mut connection) = self.store.connection(owner, &entry.slug).await? else {
            return Ok(Provided::default());
        };
        if connection.status == ConnectionStatus::NeedsConsent {
            return Err(ConnectionError::NeedsConsent { server: entry.name.clone() });
        }
        let expiring = connection.expires_at.is_some_and(|at| {
            at - switchboard_domain::now() < chrono::Duration::from_std(REFRESH_AHEAD).expect("small")
        });
        if expiring {
            connection = self.refresh(owner, entry, connection).await?;
        }
        let tokens = self.open_tokens(owner, &connection)?;
        let mut provided = Provided::default();
        let access = SecretString::from(tokens.access_token);
        match &method.access_token_key {
            Some(key) => {
                provided.values.insert(key.clone(), access);
            }
            None => provided.bearer = Some(access),
        }
        if let (Some(key), Some(refresh)) = (&method.refresh_token_key, tokens.refresh_token) {
            provided.values.insert(key.clone(), SecretString::from(refresh));
        }
        if let Some(provider) = method.client.as_deref().and_then(|name| self.provider(name)) {
            if let Some(key) = &method.client_id_key {
                provided.values.insert(key.clone(), SecretString::from(provider.client_id.clone()));
            }
            if let (Some(key), Some(secret)) = (&method.client_secret_key, &provider.client_secret) {
                provided.values.insert(key.clone(), secret.clone());
            }
        }
        Ok(provided)
    }

    /// Refreshes an expiring connection, once at a time per connection in this process; another
    /// process's concurrent refresh wins the compare-and-swap and its tokens are used.
    async fn refresh(&self, owner: Id, entry: &CatalogEntry, seen: Connection) -> Result<Connection, ConnectionError> {
        let lock = {
            let mut locks = self.refreshing.lock().expect("refresh locks");
            locks.entry((owner, entry.slug.clone())).or_default().clone()
        };
        let _held = lock.lock().await;
        let current = self
            .store
            .connection(owner, &entry.slug)
            .await?
            .ok_or_else(|| ConnectionError::NotConnected(entry.name.clone()))?;
        if current.version != seen.version {
            return Ok(current); // refreshed meanwhile
        }
        let tokens = self.open_tokens(owner, &current)?;
        let method: Method = serde_json::from_value(current.method.clone())
            .map_err(|e| StoreError::Decode(format!("a connection's method: {e}")))?;
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            self.mark_needs_consent(owner, &current).await?;
            return Err(ConnectionError::NeedsConsent { server: entry.name.clone() });
        };
        let client = self.client_of(&method).await?;
        let fresh = match self
            .http
            .refresh(
                &method.token_endpoint,
                &client,
                &SecretString::from(refresh_token.clone()),
                method.resource.as_deref(),
            )
            .await
        {
            Ok(fresh) => fresh,
            Err(e) if e.is_transient() => {
                return Err(ConnectionError::Unavailable { server: entry.name.clone(), reason: e.to_string() })
            }
            Err(e) => {
                tracing::warn!(server = %entry.slug, error = %e, "refreshing the connection failed; it needs consent again");
                self.mark_needs_consent(owner, &current).await?;
                return Err(ConnectionError::NeedsConsent { server: entry.name.clone() });
            }
        };
        let scopes = fresh.scope.clone().unwrap_or_else(|| current.scopes.clone());
        let mut updated = self.sealed(owner, &entry.slug, &fresh, Some(refresh_token), scopes, &method);
        updated.created_at = current.created_at;
        if self.store.update_connection(owner, current.version, &updated).await? {
            tracing::info!(server = %entry.slug, "connection refreshed");
            updated.version = current.version + 1;
            return Ok(updated);
        }
        // Another process refreshed at the same moment: its tokens are the current ones.
        self.store
            .connection(owner, &entry.slug)
            .await?
            .ok_or_else(|| ConnectionError::NotConnected(entry.name.clone()))
    }

    async fn mark_needs_consent(&self, owner: Id, current: &Connection) -> Result<(), ConnectionError> {
        let marked = Connection { status: ConnectionStatus::NeedsConsent, ..current.clone() };
        self.store.update_connection(owner, current.version, &marked).await?;
        Ok(())
    }

    /// Re-seals every connection's tokens not sealed under the current key. (resealed, current)
    pub async fn rotate(&self) -> Result<(usize, usize), ConnectionError> {
        let (mut resealed, mut current) = (0, 0);
        for (owner, c) in self.store.all_connections().await? {
            let sealed =
                switchboard_vault::Sealed { ciphertext: c.tokens.ciphertext.clone(), nonce: c.tokens.nonce.clone() };
            if !self.keyring.needs_reseal(&sealed) {
                current += 1;
                continue;
            }
            let fresh = self.keyring.reseal(Binding { owner, server: &c.server, key: TOKENS_KEY }, &sealed)?;
            let row = Connection {
                key_version: i64::from(fresh.key_id()?),
                tokens: Sealed { ciphertext: fresh.ciphertext, nonce: fresh.nonce },
                ..c.clone()
            };
            if self.store.update_connection(owner, c.version, &row).await? {
                resealed += 1;
            }
        }
        Ok((resealed, current))
    }
}

/// Only a hash of a state is stored: the database alone cannot answer a callback.
fn hash(state: &str) -> String {
    Sha256::digest(state.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn auth_name(auth: ClientAuth) -> &'static str {
    match auth {
        ClientAuth::ClientSecretPost => "client_secret_post",
        ClientAuth::ClientSecretBasic => "client_secret_basic",
        ClientAuth::None => "none",
    }
}

fn not_connectable(entry: &CatalogEntry, reason: &str) -> ConnectionError {
    ConnectionError::NotConnectable { server: entry.name.clone(), reason: reason.to_owned() }
}

fn oauth_error(entry: &CatalogEntry, e: OAuthError) -> ConnectionError {
    match e {
        OAuthError::Unavailable(reason) => ConnectionError::Unavailable { server: entry.name.clone(), reason },
        OAuthError::Refused(address, reason) => {
            ConnectionError::NotConnectable { server: entry.name.clone(), reason: format!("{address}: {reason}") }
        }
        other => ConnectionError::Refused { server: entry.name.clone(), reason: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_stored_as_hashes() {
        let state = switchboard_oauth::random_token();
        assert_eq!(hash(&state).len(), 64);
        assert_ne!(hash(&state), state);
        assert_eq!(hash(&state), hash(&state));
    }
}
