//! Finding an authorization server's endpoints (RFC 8414, OpenID Connect discovery) and a
//! protected resource's authorization server (RFC 9728), as the MCP authorization
//! specification asks clients to.

use serde::{Deserialize, Serialize};

use crate::{parse_challenge, Http, OAuthError};

/// An authorization server's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthServer {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
}

/// What a protected resource (a remote MCP server) says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProtectedResource {
    pub resource: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// `https://host/a/b/` and `https://host/a/b` are the same identifier.
fn same(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The well-known URLs of `issuer`'s metadata, in the order the MCP specification gives:
/// OAuth with path insertion, OpenID Connect with path insertion, OpenID Connect appended.
fn well_known_urls(issuer: &str) -> Result<Vec<String>, OAuthError> {
    let url =
        url::Url::parse(issuer).map_err(|_| OAuthError::Malformed(format!("the issuer {issuer} is not a URL")))?;
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    Ok(if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    })
}

/// An authorization server's metadata, from the first well-known URL that has it. Its `issuer`
/// must be the one asked for, and it must support PKCE with S256 if it says what it supports.
pub async fn discover(http: &Http, issuer: &str) -> Result<AuthServer, OAuthError> {
    for url in well_known_urls(issuer)? {
        let Some(document) = http.get_json(&url).await? else { continue };
        let server: AuthServer = serde_json::from_value(document)
            .map_err(|e| OAuthError::Malformed(format!("the metadata at {url}: {e}")))?;
        if !same(&server.issuer, issuer) {
            return Err(OAuthError::Malformed(format!(
                "the metadata at {url} names the issuer {} instead of {issuer}",
                server.issuer
            )));
        }
        if !server.code_challenge_methods_supported.is_empty()
            && !server.code_challenge_methods_supported.iter().any(|m| m == "S256")
        {
            return Err(OAuthError::Malformed(format!("{issuer} does not support PKCE with S256")));
        }
        return Ok(server);
    }
    Err(OAuthError::Malformed(format!("{issuer} publishes no authorization server metadata")))
}

/// From a remote MCP server's URL and the `WWW-Authenticate` header it refused a request with:
/// its protected resource metadata (where the challenge says, else at the well-known URLs), then
/// its first authorization server's metadata. The metadata must name this server as its resource.
pub async fn discover_from_challenge(
    http: &Http,
    server_url: &str,
    www_authenticate: Option<&str>,
) -> Result<(ProtectedResource, AuthServer), OAuthError> {
    let challenge = www_authenticate.and_then(parse_challenge).unwrap_or_default();
    let url = url::Url::parse(server_url).map_err(|_| OAuthError::Malformed("the server URL is not a URL".into()))?;
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    let mut candidates = Vec::new();
    if let Some(given) = challenge.resource_metadata {
        candidates.push(given);
    }
    if !path.is_empty() {
        candidates.push(format!("{origin}/.well-known/oauth-protected-resource{path}"));
    }
    candidates.push(format!("{origin}/.well-known/oauth-protected-resource"));
    let mut resource = None;
    for candidate in candidates {
        if let Some(document) = http.get_json(&candidate).await? {
            let found: ProtectedResource = serde_json::from_value(document)
                .map_err(|e| OAuthError::Malformed(format!("the protected resource metadata: {e}")))?;
            resource = Some(found);
            break;
        }
    }
    let resource =
        resource.ok_or_else(|| OAuthError::Malformed("the server publishes no protected resource metadata".into()))?;
    if !same(&resource.resource, server_url) && !same(&resource.resource, &format!("{origin}{path}")) {
        return Err(OAuthError::Malformed(format!(
            "the protected resource metadata is for {}, not this server",
            resource.resource
        )));
    }
    let issuer = resource
        .authorization_servers
        .first()
        .ok_or_else(|| OAuthError::Malformed("the server names no authorization server".into()))?
        .clone();
    let server = discover(http, &issuer).await?;
    Ok((resource, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_insert_the_issuers_path() {
        assert_eq!(
            well_known_urls("https://as.example").unwrap(),
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            well_known_urls("https://as.example/tenant/1/").unwrap(),
            [
                "https://as.example/.well-known/oauth-authorization-server/tenant/1",
                "https://as.example/.well-known/openid-configuration/tenant/1",
                "https://as.example/tenant/1/.well-known/openid-configuration"
            ]
        );
        assert!(well_known_urls("not a url").is_err());
    }
}
