//! Sign-in: a token, posted once, becomes a session cookie (random,
//! HttpOnly, SameSite=Strict, Secure under TLS). The token is held only in
//! the session's SDK client in memory — never in a URL, a page or a log.
//! Every form carries the session's CSRF token as well.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, FromRef, FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use svol_sdk::{Client, ClientConfig, ClientError, TlsConfig};

use crate::render::{page, PageError};
use crate::{Dashboard, Shared};

const COOKIE_NAME: &str = "svol_session";
/// A session unused this long is gone; so is one older than `MAX_AGE`.
const IDLE: Duration = Duration::from_secs(60 * 60);
const MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
const MAX_SESSIONS: usize = 10_000;

struct Session {
    client: Client,
    me: Me,
    csrf: String,
    made: Instant,
    used: Instant,
}

#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// Who signed in: shown in the header; `admin` opens the admin view.
#[derive(Clone, serde::Serialize)]
pub(crate) struct Me {
    pub workspace: String,
    pub label: String,
    pub admin: bool,
}

/// A signed-in request: the SDK client of its token, and its CSRF token.
pub(crate) struct Signed {
    pub client: Client,
    pub me: Me,
    pub csrf: String,
}

impl Signed {
    /// What every signed-in page's template needs: the navigation item,
    /// the CSRF token of its forms and who is signed in.
    pub fn base(&self, nav: &str) -> minijinja::Value {
        minijinja::context! { nav, csrf => self.csrf.clone(), me => self.me.clone() }
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check(&self, csrf: &str) -> Result<(), PageError> {
        let a = self.csrf.as_bytes();
        let b = csrf.as_bytes();
        let same =
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same {
            Ok(())
        } else {
            Err(PageError::Forbidden(
                "the form is stale or came from another site; reload the page and try again".into(),
            ))
        }
    }
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_string())
}

impl<S> FromRequestParts<S> for Signed
where
    Arc<Dashboard>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let dash = Arc::<Dashboard>::from_ref(state);
        let id = cookie_value(&parts.headers);
        let now = Instant::now();
        let mut map = dash.sessions.map.lock().unwrap_or_else(|p| p.into_inner());
        match id.as_deref().and_then(|id| map.get_mut(id)) {
            Some(s)
                if now.duration_since(s.used) < IDLE && now.duration_since(s.made) < MAX_AGE =>
            {
                s.used = now;
                Ok(Signed {
                    client: s.client.clone(),
                    me: s.me.clone(),
                    csrf: s.csrf.clone(),
                })
            }
            _ => {
                if let Some(id) = id {
                    map.remove(&id);
                }
                Err(Redirect::to("/signin").into_response())
            }
        }
    }
}

pub(crate) async fn signin_page(State(d): Shared) -> Response {
    page(&d, "signin.html", minijinja::context! {})
}

#[derive(serde::Deserialize)]
pub(crate) struct SigninForm {
    token: String,
}

pub(crate) async fn signin(State(d): Shared, Form(f): Form<SigninForm>) -> Response {
    let refused = |why: &str| {
        let mut r = page(&d, "signin.html", minijinja::context! { error => why });
        *r.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
        r
    };
    let token = f.token.trim().to_string();
    if token.is_empty() || token.len() > 512 {
        return refused("enter a token");
    }
    let Some(server) = d.cfg.server.get().cloned() else {
        return refused("the server is still starting; try again in a moment");
    };
    let cfg = ClientConfig {
        server,
        token,
        tls: TlsConfig {
            ca: d.cfg.ca.clone(),
            cert: None,
            key: None,
        },
        token_source: "the sign-in form".into(),
    };
    let client = match Client::connect(&cfg).await {
        Ok(c) => c,
        Err(e) => return PageError::from(e).into_response(),
    };
    // Proves the token, and says whose it is.
    let me = match client.whoami().await {
        Ok(i) => Me {
            workspace: i.workspace,
            label: i.token_label,
            admin: i.admin,
        },
        Err(ClientError::Unauthenticated(_)) => return refused("this token was refused"),
        Err(e) => return PageError::from(e).into_response(),
    };
    let id = random_hex();
    let now = Instant::now();
    {
        let mut map = d.sessions.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| {
            now.duration_since(s.used) < IDLE && now.duration_since(s.made) < MAX_AGE
        });
        if map.len() >= MAX_SESSIONS {
            return PageError::Unavailable("too many signed-in sessions; try again later".into())
                .into_response();
        }
        map.insert(
            id.clone(),
            Session {
                client,
                me,
                csrf: random_hex(),
                made: now,
                used: now,
            },
        );
    }
    let secure = if d.cfg.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        MAX_AGE.as_secs()
    );
    ([(SET_COOKIE, cookie)], Redirect::to("/apps")).into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct CsrfForm {
    pub csrf: String,
}

pub(crate) async fn signout(
    State(d): Shared,
    signed: Signed,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    signed.check(&f.csrf)?;
    if let Some(id) = cookie_value(&headers) {
        d.sessions
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
    let gone = format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(SET_COOKIE, gone)], Redirect::to("/signin")).into_response())
}
