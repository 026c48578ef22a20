//! Templates (minijinja, auto-escaping every `.html` template: a file
//! name or volume name is always text, never markup), the headers every
//! page carries, and errors as pages.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use svol_sdk::ClientError;

use crate::Dashboard;

pub(crate) struct Templates {
    env: Environment<'static>,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("signin.html", include_str!("../templates/signin.html")),
    ("apps.html", include_str!("../templates/apps.html")),
    ("stop.html", include_str!("../templates/stop.html")),
    ("volumes.html", include_str!("../templates/volumes.html")),
    ("files.html", include_str!("../templates/files.html")),
    ("delete.html", include_str!("../templates/delete.html")),
    ("tokens.html", include_str!("../templates/tokens.html")),
    ("admin.html", include_str!("../templates/admin.html")),
    ("error.html", include_str!("../templates/error.html")),
];

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, src) in TEMPLATES {
            if let Err(e) = env.add_template(name, src) {
                // The templates are part of the binary: a broken one is a
                // build defect, caught by the crate's tests.
                tracing::error!("template {name}: {e}");
            }
        }
        env.add_filter("size", human_size);
        env.add_filter("time", utc_time);
        env.add_filter("duration", human_duration);
        Templates { env }
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

/// Security headers of every dashboard response: no script may run at all
/// (there is none), nothing is framed, and pages are not cached.
pub(crate) fn harden(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

pub(crate) fn page(d: &Dashboard, name: &str, ctx: minijinja::Value) -> Response {
    match d.templates.render(name, ctx) {
        Ok(html) => {
            let mut r = (
                [(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                html,
            )
                .into_response();
            harden(&mut r);
            r
        }
        Err(e) => {
            tracing::error!("rendering {name}: {e}");
            PageError::Internal("the page could not be rendered".into()).into_response()
        }
    }
}

pub(crate) async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../static/style.css"),
    )
        .into_response()
}

/// What went wrong, as the page (and status) the browser gets.
#[derive(Debug)]
pub(crate) enum PageError {
    NotFound(String),
    Forbidden(String),
    BadRequest(String),
    Unavailable(String),
    Internal(String),
}

impl From<ClientError> for PageError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::NotFound(m) => PageError::NotFound(format!("{m}: not found")),
            ClientError::PermissionDenied(_) | ClientError::Unauthenticated(_) => {
                PageError::Forbidden(e.to_string())
            }
            ClientError::InvalidArgument(_)
            | ClientError::AlreadyExists(_)
            | ClientError::Fs(..) => PageError::BadRequest(e.to_string()),
            ClientError::Unavailable(_) | ClientError::NoSpace(_) => {
                PageError::Unavailable(e.to_string())
            }
            _ => PageError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            PageError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            PageError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            PageError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            PageError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        // Rendered without templates' state: an error page must not fail.
        let html = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>svol: {code}</title>\
             <link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main>\
             <h1>{code}</h1><p class=\"error\">{msg}</p><p><a href=\"/apps\">Back to the dashboard</a></p>\
             </main></body></html>",
            code = status.as_u16(),
            msg = escape(&msg),
        );
        let mut r = (
            status,
            [(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response();
        harden(&mut r);
        r
    }
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `2026-12-04 03:57 UTC` from seconds since the epoch.
/// Seconds as people say them: `24 h`, `90 min`, `7 days`.
pub(crate) fn human_duration(secs: u64) -> String {
    match secs {
        s if s >= 2 * 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

pub(crate) fn utc_time(secs: i64) -> String {
    let t = svol_sdk::UtcTime::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let t = Templates::new();
        for (name, _) in TEMPLATES {
            assert!(t.env.get_template(name).is_ok(), "{name} does not parse");
        }
    }

    #[test]
    fn every_page_renders_with_data() {
        let t = Templates::new();
        let vol = minijinja::context! { id => "vo-1", name => "v", ephemeral => false, bytes => 5, stored_bytes => 4, files => 1, created => 0, app => "ap-1" };
        let client = minijinja::context! { session => "ab12", workspace => "main", volume => "vo-1", volume_name => "v", host => "h", purpose => "mount /m", peer => "127.0.0.1:1", since => 0 };
        let ctx = minijinja::context! {
            nav => "apps", csrf => "c", error => "e",
            me => minijinja::context! { workspace => "main", label => "l", admin => true },
            apps => vec![minijinja::context! { id => "ap-1", name => "a", kind => "app", state => "running", created => 0, volumes => vec![vol.clone()], clients => vec![client.clone()] }],
            app => minijinja::context! { id => "ap-1", name => "a", kind => "app", volumes => vec![vol.clone()], clients => vec![client.clone()] },
            clients => vec![client],
            workspaces => vec![minijinja::context! { name => "main", volumes => 1, running_apps => 1, files => 1, logical_bytes => 5, stored_bytes => 4, sessions => 1, created => 0 }],
            bytes => 5, stored => 4, files => 1, more => true, retention => 86400, volumes => vec![vol.clone()], volume => vol,
            path => "a b", crumbs => vec![minijinja::context! { name => "a b", path => "a b" }],
            rows => vec![minijinja::context! { name => "n", path => "a b/n", kind => "dir", size => 1, mtime => 0 }],
            next => 7, first_page => false, is_dir => true, entries => 2, size => 1,
            tokens => vec![minijinja::context! { id => "tk-1", label => "l", admin => true, created => 0, revoked => false, workspace => "main" }],
            new_id => "tk-2", new_secret => "s", message => "m",
        };
        for (name, _) in TEMPLATES {
            if let Err(e) = t.render(name, ctx.clone()) {
                panic!("{name}: {e}");
            }
        }
    }

    #[test]
    fn names_are_text_not_markup() {
        let t = Templates::new();
        let html = t
            .render(
                "error.html",
                minijinja::context! { message => "<script>alert(1)</script>" },
            )
            .expect("render");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{html}");
        assert!(!html.contains("<script>alert"));
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
        assert_eq!(human_duration(86_400), "24 h");
        assert_eq!(human_duration(7 * 86_400), "7 days");
        assert_eq!(human_duration(90 * 60), "90 min");
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_time(1_796_357_820), "2026-12-04 04:17 UTC");
    }
}
