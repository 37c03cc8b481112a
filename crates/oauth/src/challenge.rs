//! Reading a `WWW-Authenticate: Bearer …` challenge (RFC 6750 section 3, RFC 9728 section 5.1).

/// What a protected resource said when it refused a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    /// Where its protected resource metadata is.
    pub resource_metadata: Option<String>,
    /// The scopes it asks for, space-separated.
    pub scope: Option<String>,
    /// `invalid_token`, `insufficient_scope`…
    pub error: Option<String>,
}

/// The Bearer challenge among the header's challenges, if any.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let start = find_scheme(header, "bearer")?;
    let mut rest = header[start + "bearer".len()..].trim_start();
    let mut challenge = Challenge::default();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim().trim_start_matches(',').trim().to_ascii_lowercase();
        if name.contains(' ') {
            break; // the next challenge's scheme
        }
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            out.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => out.push(c),
                }
            }
            value = out;
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        match name.as_str() {
            "resource_metadata" => challenge.resource_metadata = Some(value),
            "scope" => challenge.scope = Some(value),
            "error" => challenge.error = Some(value),
            _ => {}
        }
    }
    Some(challenge)
}

/// Where the scheme `name` starts (as a whole word, case-insensitively).
fn find_scheme(header: &str, name: &str) -> Option<usize> {
    let lower = header.to_ascii_lowercase();
    lower.match_indices(name).map(|(i, _)| i).find(|&i| {
        let before_ok = i == 0 || matches!(lower.as_bytes()[i - 1], b' ' | b',');
        let after = lower.as_bytes().get(i + name.len());
        before_ok && after.is_none_or(|b| *b == b' ')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_give_their_metadata_scope_and_error() {
        let c = parse_challenge(
            r#"Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource", scope="files:read files:write", error="invalid_token""#,
        )
        .unwrap();
        assert_eq!(c.resource_metadata.as_deref(), Some("https://mcp.example/.well-known/oauth-protected-resource"));
        assert_eq!(c.scope.as_deref(), Some("files:read files:write"));
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
    }

    #[test]
    fn other_schemes_and_odd_spacing_are_handled() {
        let c =
            parse_challenge(r#"Basic realm="x", Bearer realm="api",error=insufficient_scope , scope="a\"b""#).unwrap();
        assert_eq!(c.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(c.scope.as_deref(), Some("a\"b"));
        assert_eq!(parse_challenge("Bearer"), Some(Challenge::default()));
        assert_eq!(parse_challenge(r#"Basic realm="x""#), None);
        assert_eq!(parse_challenge("Bearerish x=1"), None);
    }
}
