//! Who is asking, and what they may do: the access table of the HTTP surface.
//!
//! A request is made by a [`Principal`]: a `[[users]]` entry, found by the SHA-256 of its
//! bearer token (compared in constant time) or named by the auth proxy's header (believed
//! only from the configured peers); or a role token of `[server.tokens]` (machines), which
//! acts under the role's name. A surface with no credential configured for any role that
//! may use it is open to loopback peers only, who act as `local` with every right.
//!
//! Each route belongs to one [`Surface`], which lists the roles that may use it; a lead
//! acts only on their own teams and an agent reads only their own record: handlers check
//! that with [`Principal::may_act_on`] and [`Principal::own_agent`].
//!
//! Must not: log a token, or say which credential nearly matched.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{peer_of, ApiError, AppState};
use crate::config::{Config, Role};

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// What `by` records for what they do: the user's name, or the role's for a role token.
    pub name: String,
    pub role: Role,
    /// The teams a lead may act on; `None`: every team.
    pub teams: Option<Vec<String>>,
    /// For an agent: who they are.
    pub agent: Option<String>,
    /// A loopback peer on a surface with no credentials configured (development, the demo).
    pub open: bool,
}

impl Principal {
    /// Whether they may act on (or read the record of) an agent of `team`.
    pub fn may_act_on(&self, team: &str) -> bool {
        match &self.teams {
            None => true,
            Some(teams) => teams.iter().any(|t| t == team),
        }
    }

    /// The agent an agent user is limited to (`None` for everyone else).
    pub fn own_agent(&self) -> Option<&str> {
        match self.role {
            Role::Agent => Some(self.agent.as_deref().unwrap_or("")),
            _ => None,
        }
    }

    fn local() -> Principal {
        Principal {
            name: "local".into(),
            role: Role::Admin,
            teams: None,
            agent: None,
            open: true,
        }
    }
}

/// A group of routes with the same access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// `/ingest`.
    Ingest,
    /// The wallboard, `/ws/floor`, the floor and the rest of `GET /api`.
    View,
    /// Reads an agent may make of their own record (violations, appraisal, their page).
    Record,
    /// Approvals, demerits, waivers.
    Lead,
    /// Planning shifts.
    Shifts,
    /// Closing a month.
    Close,
    /// A month's statement.
    Statement,
    /// The agent's own page.
    Me,
}

impl Surface {
    /// The roles that may use it.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Surface::Ingest => &[Ingest],
            Surface::View => &[Admin, Qa, Lead, Viewer],
            Surface::Record => &[Admin, Qa, Lead, Viewer, Agent],
            Surface::Lead => &[Admin, Qa, Lead],
            Surface::Shifts => &[Admin, Lead],
            Surface::Close => &[Admin, Qa],
            Surface::Statement => &[Admin, Qa, Lead],
            Surface::Me => &[Agent],
        }
    }

    /// The role name a wrong-role refusal names.
    fn name(self) -> &'static str {
        match self {
            Surface::Ingest => "ingest",
            Surface::View | Surface::Record => "viewer",
            Surface::Lead | Surface::Statement => "lead",
            Surface::Shifts => "lead or admin",
            Surface::Close => "qa or admin",
            Surface::Me => "agent",
        }
    }

    /// Whether a credential that could use this surface is configured at all.
    fn secured(self, c: &Config) -> bool {
        let roles = self.roles();
        let t = &c.server.tokens;
        let tokens = roles.iter().any(|r| match r {
            Role::Ingest => !t.ingest.is_empty(),
            Role::Viewer => !t.viewer.is_empty(),
            Role::Lead => !t.lead.is_empty(),
            _ => false,
        });
        let people = self != Surface::Ingest && c.server.auth_proxy.is_some();
        tokens || people || c.server.users.iter().any(|u| roles.contains(&u.role))
    }
}

/// Whether two byte strings are equal, in time that depends on the length only.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The principal of a request: the auth proxy's user, else the bearer token's (header, or
/// `query_token` where a page allows it), else `local` on an open surface from loopback.
pub fn principal(
    c: &Config,
    surface: Surface,
    headers: &HeaderMap,
    query_token: Option<&str>,
    peer: Option<SocketAddr>,
) -> Result<Principal, ApiError> {
    // No credential could use this surface: it is open to loopback peers, whatever they send.
    if !surface.secured(c) {
        return match peer {
            Some(p) if !p.ip().is_loopback() => Err(ApiError::LoopbackOnly(surface.name())),
            _ => Ok(Principal::local()),
        };
    }
    if let (Some(proxy), Some(peer)) = (&c.server.auth_proxy, peer) {
        let trusted = proxy.trusted.iter().any(|n| n.contains(&peer.ip()));
        // A name may be UTF-8 (王芳); header values are bytes.
        let named = headers
            .get(proxy.header.as_str())
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        if let (true, Some(name)) = (trusted, named) {
            let Some(u) = c.server.users.iter().find(|u| u.name == name) else {
                return Err(ApiError::Unauthorized);
            };
            return Ok(user_principal(u));
        }
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .or(query_token);
    let Some(given) = given else {
        return Err(ApiError::Unauthorized);
    };
    // Every credential is compared, so the time taken does not say which one nearly matched.
    let digest = ring::digest::digest(&ring::digest::SHA256, given.as_bytes());
    let mut found: Option<Principal> = None;
    for u in &c.server.users {
        if let Some(h) = &u.token_sha256 {
            if ct_eq(h, digest.as_ref()) {
                found = Some(user_principal(u));
            }
        }
    }
    let t = &c.server.tokens;
    for (role, list) in [
        (Role::Ingest, &t.ingest),
        (Role::Viewer, &t.viewer),
        (Role::Lead, &t.lead),
    ] {
        for token in list {
            if ct_eq(token.as_bytes(), given.as_bytes()) && found.is_none() {
                found = Some(Principal {
                    name: role.as_str().to_string(),
                    role,
                    teams: None,
                    agent: None,
                    open: false,
                });
            }
        }
    }
    // A token that matches no one is 401, and is never logged.
    found.ok_or(ApiError::Unauthorized)
}

fn user_principal(u: &crate::config::User) -> Principal {
    Principal {
        name: u.name.clone(),
        role: u.role,
        teams: (u.role == Role::Lead).then(|| u.teams.clone()),
        agent: u.agent.clone(),
        open: false,
    }
}

/// The principal of `req` if it may use `surface`: 401 without a valid credential, 403
/// for a role that may not use it.
pub fn admit(s: &AppState, surface: Surface, req: &Request) -> Result<Principal, ApiError> {
    // A TV cannot set headers: the wallboard and its feed take `?token=`. Everything else
    // wants the header, so tokens stay out of URLs that proxies log. A browser cannot set
    // headers on a WebSocket either, but it can offer subprotocols: the console pages send
    // their token as one (see [`WS_BEARER_PREFIX`]), never in the URL.
    let query_token = match req.uri().path() {
        "/" | "/ws/floor" => req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(str::to_string)
        }),
        _ => None,
    };
    let query_token = match req.uri().path() {
        "/ws/floor" => ws_bearer(req.headers()).or(query_token),
        _ => query_token,
    };
    admit_parts(
        &s.config,
        surface,
        req.headers(),
        query_token.as_deref(),
        peer_of(req.extensions()),
    )
}

/// The WebSocket subprotocol that carries a bearer token to `/ws/floor`: this prefix, then
/// the token's UTF-8 bytes in lowercase hex (a subprotocol is an HTTP token: hex always is
/// one). The server answers with the subprotocol [`WS_FLOOR_PROTOCOL`], which the page
/// offers beside it.
pub const WS_BEARER_PREFIX: &str = "floorwatch.bearer.";

/// The subprotocol `/ws/floor` selects when a client offers it.
pub const WS_FLOOR_PROTOCOL: &str = "floorwatch.floor";

/// The token of a `floorwatch.bearer.<hex>` subprotocol offered by the client, if any.
fn ws_bearer(headers: &HeaderMap) -> Option<String> {
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    for p in offered {
        if let Some(hex) = p.strip_prefix(WS_BEARER_PREFIX) {
            return from_hex(hex).and_then(|b| String::from_utf8(b).ok());
        }
    }
    None
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// [`principal`], then the surface's roles: 403 for a role that may not use it.
pub fn admit_parts(
    c: &Config,
    surface: Surface,
    headers: &HeaderMap,
    query_token: Option<&str>,
    peer: Option<SocketAddr>,
) -> Result<Principal, ApiError> {
    let p = principal(c, surface, headers, query_token, peer)?;
    if p.open || surface.roles().contains(&p.role) {
        Ok(p)
    } else {
        Err(ApiError::WrongRole(surface.name()))
    }
}

/// A route layer: admits the request to `surface` and hands the [`Principal`] to the
/// handler as an extension.
pub async fn guard(surface: Surface, s: AppState, mut req: Request, next: Next) -> Response {
    match admit(&s, surface, &req) {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

macro_rules! guards {
    ($($name:ident => $surface:expr),* $(,)?) => {
        $(
            pub async fn $name(State(s): State<AppState>, req: Request, next: Next) -> Response {
                guard($surface, s, req, next).await
            }
        )*
    };
}

guards! {
    view_guard => Surface::View,
    record_guard => Surface::Record,
    lead_guard => Surface::Lead,
    shifts_guard => Surface::Shifts,
    close_guard => Surface::Close,
    statement_guard => Surface::Statement,
    me_guard => Surface::Me,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::User;

    fn sha(t: &str) -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, t.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    fn config() -> Config {
        let mut c = Config::default();
        c.server.users = vec![
            User {
                name: "王芳".into(),
                role: Role::Lead,
                teams: vec!["t1".into()],
                agent: None,
                token_sha256: Some(sha("wang")),
            },
            User {
                name: "a-0042".into(),
                role: Role::Agent,
                teams: vec![],
                agent: Some("a-0042".into()),
                token_sha256: Some(sha("me")),
            },
            User {
                name: "陈".into(),
                role: Role::Qa,
                teams: vec![],
                agent: None,
                token_sha256: None,
            },
        ];
        c.server.tokens.lead = vec!["machine".into()];
        c.server.auth_proxy = Some(crate::config::AuthProxy {
            header: "X-Forwarded-User".into(),
            trusted: vec!["10.0.0.0/8".parse().expect("net")],
        });
        c
    }

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {t}").parse().expect("header"),
        );
        h
    }

    #[test]
    fn users_by_token_digest_role_tokens_by_name_and_nobody_else() {
        let c = config();
        let p = principal(&c, Surface::Lead, &bearer("wang"), None, None).expect("user");
        assert_eq!((p.name.as_str(), p.role), ("王芳", Role::Lead));
        assert!(p.may_act_on("t1") && !p.may_act_on("t2"));
        let m = principal(&c, Surface::Lead, &bearer("machine"), None, None).expect("token");
        assert_eq!((m.name.as_str(), m.teams.clone()), ("lead", None));
        assert_eq!(
            principal(&c, Surface::Lead, &bearer("nobody"), None, None),
            Err(ApiError::Unauthorized)
        );
        let a = principal(&c, Surface::Record, &bearer("me"), None, None).expect("agent");
        assert_eq!(a.own_agent(), Some("a-0042"));
    }

    #[test]
    fn the_proxy_header_is_believed_from_trusted_peers_only() {
        let c = config();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-user", "陈".parse().expect("header"));
        let trusted: SocketAddr = "10.1.2.3:4000".parse().expect("addr");
        let other: SocketAddr = "192.0.2.1:4000".parse().expect("addr");
        let p = principal(&c, Surface::Close, &h, None, Some(trusted)).expect("proxy user");
        assert_eq!((p.name.as_str(), p.role), ("陈", Role::Qa));
        // From anyone else the header is ignored: no credential at all.
        assert_eq!(
            principal(&c, Surface::Close, &h, None, Some(other)),
            Err(ApiError::Unauthorized)
        );
        let mut unknown = HeaderMap::new();
        unknown.insert("x-forwarded-user", "mallory".parse().expect("header"));
        assert_eq!(
            principal(&c, Surface::Close, &unknown, None, Some(trusted)),
            Err(ApiError::Unauthorized)
        );
    }

    #[test]
    fn a_websocket_subprotocol_carries_a_token_in_hex_and_nothing_else_does() {
        let mut h = HeaderMap::new();
        // "wang" is 77 61 6e 67.
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "floorwatch.floor, floorwatch.bearer.77616e67"
                .parse()
                .expect("header"),
        );
        assert_eq!(ws_bearer(&h).as_deref(), Some("wang"));
        for bad in [
            "floorwatch.floor",
            "floorwatch.bearer.7761f",
            "floorwatch.bearer.zz",
            "bearer.77616e67",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, bad.parse().expect("header"));
            assert_eq!(ws_bearer(&h), None, "{bad}");
        }
    }

    #[test]
    fn an_unsecured_surface_is_local_on_loopback_and_refused_elsewhere() {
        let c = Config::default();
        let p = principal(&c, Surface::Close, &HeaderMap::new(), None, None).expect("local");
        assert!(p.open && p.role == Role::Admin);
        let far: SocketAddr = "192.0.2.1:4000".parse().expect("addr");
        assert_eq!(
            principal(&c, Surface::Close, &HeaderMap::new(), None, Some(far)),
            Err(ApiError::LoopbackOnly("qa or admin"))
        );
    }
}
