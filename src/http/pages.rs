//! The console pages built into the binary: `/lead` (the team lead's console), `/me` (the
//! agent's own page), the script and style they share, and the CJK font every page uses.
//!
//! The pages hold no data: they are the same for everyone and are served to anyone who
//! asks. They sign in through the API (a bearer token the user types, kept in the tab's
//! `sessionStorage`, or the auth proxy's header) and read and act through it, so every
//! access rule stays where it is for the API ([`super::access`]). The font is a subset of
//! WenQuanYi Micro Hei (Apache-2.0; `assets/fonts/`), made by `scripts/font-subset`.
//!
//! Must not: put data in a page, or fetch anything from another origin (the pages' content
//! security policy allows this origin only).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const LEAD: &str = include_str!("pages/lead.html");
const ME: &str = include_str!("pages/me.html");
const CONSOLE_JS: &str = include_str!("pages/console.js");
const LEAD_JS: &str = include_str!("pages/lead.js");
const ME_JS: &str = include_str!("pages/me.js");
const CONSOLE_CSS: &str = include_str!("pages/console.css");
/// The CJK glyphs of the pages (and of most Chinese names): see `assets/fonts/README.md`.
pub const CJK_FONT: &[u8] = include_bytes!("../../assets/fonts/cjk.woff2");

/// Same-origin only: no inline script or style, no other host, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

fn page(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn html(body: &'static str) -> Response {
    let mut r = page(body, "text/html; charset=utf-8", "no-cache");
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

/// `GET /lead`.
pub(super) async fn lead() -> Response {
    html(LEAD)
}

/// `GET /me`.
pub(super) async fn me() -> Response {
    html(ME)
}

fn script(body: &'static str) -> Response {
    page(body, "text/javascript; charset=utf-8", "no-cache")
}

/// `GET /assets/console.js`: what both pages share (sign-in, the API, the feed, words).
pub(super) async fn console_js() -> Response {
    script(CONSOLE_JS)
}

/// `GET /assets/lead.js`.
pub(super) async fn lead_js() -> Response {
    script(LEAD_JS)
}

/// `GET /assets/me.js`.
pub(super) async fn me_js() -> Response {
    script(ME_JS)
}

/// `GET /assets/console.css`.
pub(super) async fn console_css() -> Response {
    page(CONSOLE_CSS, "text/css; charset=utf-8", "no-cache")
}

/// `GET /assets/cjk.woff2`: the font changes only with the binary; browsers keep it a day.
pub(super) async fn cjk_font() -> Response {
    let mut r = CJK_FONT.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("font/woff2"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
