//! Which remote addresses Switchboard may connect to on a user's behalf (SSRF protection).
//!
//! A URL a user influences is checked before anything is sent: only `https` (or `http` when
//! allowed), no user-info, and every address its host resolves to must be public — loopback,
//! private, link-local, shared, multicast and unspecified ranges are refused unless an allow-list
//! entry covers them. The addresses checked are the ones connected to ([`Pinned`]), so a name
//! that resolves differently a moment later (DNS rebinding) cannot redirect the connection, and
//! redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// Why a URL was refused. The message never repeats the URL's credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    #[error("not a valid URL")]
    Invalid,
    #[error("only https URLs are allowed{0}")]
    Scheme(&'static str),
    #[error("URLs with a user name or password are not allowed")]
    UserInfo,
    #[error("the URL's host {0} could not be resolved")]
    Unresolvable(String),
    #[error("the URL's host resolves to {0}, a loopback, private, link-local or otherwise internal address")]
    Internal(IpAddr),
}

/// The outbound rules.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Networks allowed even though they are internal (for example a company's MCP servers).
    pub allow: Vec<IpNet>,
    /// Allow plain `http` as well as `https`.
    pub allow_http: bool,
}

/// A checked URL and the addresses it may be connected to.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub url: url::Url,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

impl OutboundPolicy {
    /// Checks a URL and resolves its host, refusing anything internal.
    pub async fn check(&self, raw: &str) -> Result<Pinned, Refused> {
        let url = url::Url::parse(raw.trim()).map_err(|_| Refused::Invalid)?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(Refused::Scheme(" (plain http is switched off)")),
            _ => return Err(Refused::Scheme("")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::UserInfo);
        }
        let port = url.port_or_known_default().ok_or(Refused::Invalid)?;
        let (host, addrs): (String, Vec<SocketAddr>) = match url.host().ok_or(Refused::Invalid)? {
            url::Host::Ipv4(ip) => (ip.to_string(), vec![SocketAddr::new(IpAddr::V4(ip), port)]),
            url::Host::Ipv6(ip) => (ip.to_string(), vec![SocketAddr::new(IpAddr::V6(ip), port)]),
            url::Host::Domain(name) => {
                let name = name.to_owned();
                let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
                    .await
                    .map_err(|_| Refused::Unresolvable(name.clone()))?
                    .collect();
                if found.is_empty() {
                    return Err(Refused::Unresolvable(name));
                }
                (name, found)
            }
        };
        for addr in &addrs {
            self.check_ip(addr.ip())?;
        }
        Ok(Pinned { url, host, addrs })
    }

    /// Refuses internal addresses not covered by the allow-list.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        let ip = canonical(ip);
        if self.allow.iter().any(|net| net.contains(&ip)) || is_public(ip) {
            Ok(())
        } else {
            Err(Refused::Internal(ip))
        }
    }

    /// An HTTP client that connects only to the pinned addresses and follows no redirect.
    /// `https` servers are checked against the system's certificate store.
    pub fn client(&self, pinned: &Pinned) -> Result<reqwest013::Client, String> {
        install_tls_provider();
        reqwest013::Client::builder()
            .redirect(reqwest013::redirect::Policy::none())
            .resolve_to_addrs(&pinned.host, &pinned.addrs)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())
    }
}

/// IPv4-mapped and IPv4-compatible IPv6 addresses as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0                                 // "this network"
        || (a == 100 && (64..128).contains(&b))   // shared address space (CGNAT)
        || (a == 192 && b == 0)                   // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b))    // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00   // unique local
        || (first & 0xffc0) == 0xfe80   // link-local
        || (first & 0xffc0) == 0xfec0   // site-local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

/// The IPv4 address inside IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002::/16`) addresses, which reach that IPv4 host.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(v4(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(v4(s[1], s[2]));
    }
    None
}

/// Installs the process-wide TLS provider every HTTP client of this crate needs (rmcp's default
/// client too, which would otherwise panic); installing it again is a no-op.
pub(crate) fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hostile_urls_are_refused_before_any_connection() {
        // B4.26: literal, encoded and mapped forms of internal addresses, bad schemes, user-info.
        let policy = OutboundPolicy { allow: vec![], allow_http: true };
        let hostile = [
            "http://127.0.0.1/mcp",
            "http://localhost:8080/mcp",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://[fc00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f000001/",
            "http://0x7f.0.0.1/",
            "http://127.1/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://a@127.0.0.1/",
            "http://user:pass@example.com/",
            "http://example.com@127.0.0.1/",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "data:text/plain,hi",
            "ftp://example.com/",
            "gopher://127.0.0.1:6379/",
            "not a url",
            "http://[::]/",
        ];
        for url in hostile {
            assert!(policy.check(url).await.is_err(), "{url} was accepted");
        }
        let strict = OutboundPolicy::default();
        assert_eq!(
            strict.check("http://93.184.215.14/").await.unwrap_err(),
            Refused::Scheme(" (plain http is switched off)")
        );
        assert!(strict.check("https://93.184.215.14/mcp").await.is_ok());
        assert!(strict.check("https://[2606:4700::1111]/").await.is_ok());
    }

    #[tokio::test]
    async fn connections_go_to_the_checked_addresses_without_a_second_lookup_and_follow_no_redirect() {
        // B4.27: the name is never resolved again at connect time (here it does not resolve at
        // all), so DNS rebinding between the check and the connection cannot move it.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let reply = "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\n\r\n";
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        let policy = OutboundPolicy { allow: vec!["127.0.0.1/32".parse().unwrap()], allow_http: true };
        let pinned = Pinned {
            url: format!("http://rebinding.invalid:{}/mcp", addr.port()).parse().unwrap(),
            host: "rebinding.invalid".into(),
            addrs: vec![addr],
        };
        let response = policy.client(&pinned).unwrap().get(pinned.url.clone()).send().await.unwrap();
        assert_eq!(response.status(), 302, "reached the pinned address, and did not follow the redirect");
    }

    #[tokio::test]
    async fn an_allow_list_entry_opens_exactly_its_network() {
        let policy = OutboundPolicy { allow: vec!["127.0.0.1/32".parse().unwrap()], allow_http: true };
        let pinned = policy.check("http://127.0.0.1:9/mcp").await.unwrap();
        assert_eq!(pinned.addrs, vec!["127.0.0.1:9".parse().unwrap()]);
        assert!(policy.check("http://127.0.0.2/").await.is_err());
        assert!(policy.check("http://10.0.0.1/").await.is_err());
    }
}
