//! A volume's file browser: directories a page at a time (a directory of
//! 100,000 names is never one giant page), downloads streamed a block at a
//! time, uploads, and deletes behind a confirmation page.

use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use futures::StreamExt;
use minijinja::context;
use serde::Serialize;
use svol_sdk::Volume;

use crate::render::{harden, page, PageError};
use crate::session::Signed;
use crate::Shared;

/// Entries per page of a directory.
const PAGE: u32 = 200;
/// The largest upload (all files of one form) the dashboard takes; bigger
/// files go through `svol volume put` or the SDK, which stream from disk.
pub(crate) const MAX_UPLOAD: usize = 256 << 20;

type PageResult = Result<Response, PageError>;

#[derive(serde::Deserialize)]
pub(crate) struct At {
    #[serde(default)]
    path: String,
    #[serde(default)]
    after: u64,
}

/// `a/b` from `/a/b/`; refuses `..`, NUL and overlong names like every
/// other client.
fn clean(path: &str) -> Result<String, PageError> {
    let p = path.trim_matches('/').to_string();
    if !p.is_empty() {
        svol_sdk::check_remote_path(&p)?;
    }
    Ok(p)
}

/// The volume a URL names (404 beyond the token's workspace) and the
/// cleaned path within it.
async fn open(s: &Signed, vol: &str, path: &str) -> Result<(Volume, String), PageError> {
    svol_sdk::check_volume_ref(vol)?;
    let path = clean(path)?;
    Ok((s.client.volume(vol).await?, path))
}

#[derive(Serialize)]
struct Crumb {
    name: String,
    path: String,
}

fn crumbs(path: &str) -> Vec<Crumb> {
    let mut out = Vec::new();
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(part);
        out.push(Crumb {
            name: part.to_string(),
            path: at.clone(),
        });
    }
    out
}

#[derive(Serialize)]
struct Row {
    name: String,
    path: String,
    kind: &'static str,
    size: u64,
    mtime: i64,
}

pub(crate) async fn browse(
    State(d): Shared,
    s: Signed,
    Path(vol): Path<String>,
    Query(at): Query<At>,
) -> PageResult {
    let (v, path) = open(&s, &vol, &at.path).await?;
    let attr = v.stat(if path.is_empty() { "/" } else { &path }).await?;
    if !attr.is_dir() {
        return Ok(Redirect::to(&format!(
            "/volumes/{}/download?path={}",
            v.info().id,
            urlencode(&path)
        ))
        .into_response());
    }
    // One entry more than a page says whether a next page has any: a
    // directory of exactly n pages ends on a full page, not an empty one.
    let mut entries = v.readdir(attr.ino, at.after, PAGE + 1).await?.entries;
    let next = if entries.len() > PAGE as usize {
        entries.truncate(PAGE as usize);
        entries.last().map(|e| e.cookie)
    } else {
        None
    };
    let rows: Vec<Row> = entries
        .into_iter()
        .map(|e| {
            let name = String::from_utf8_lossy(&e.name).into_owned();
            let a = e.attr;
            Row {
                path: if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}/{name}")
                },
                name,
                kind: a.kind.name(),
                size: a.size,
                mtime: a.mtime.sec,
            }
        })
        .collect();
    let info = v.info();
    Ok(page(
        &d,
        "files.html",
        context! {
            volume => context! { id => info.id.clone(), name => info.name.clone() },
            path, crumbs => crumbs(&path), rows, next, first_page => at.after == 0,
            ..s.base("volumes")
        },
    ))
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) async fn download(
    s: Signed,
    Path(vol): Path<String>,
    Query(at): Query<At>,
) -> PageResult {
    let (v, path) = open(&s, &vol, &at.path).await?;
    let (size, chunks) = v.read_plan(&path).await?;
    let name = path.rsplit('/').next().unwrap_or("download").to_string();
    let body = futures::stream::iter(chunks.into_iter().enumerate()).then(move |(i, c)| {
        let v = v.clone();
        async move {
            let want = (size - i as u64 * svol_sdk::CHUNK_SIZE).min(svol_sdk::CHUNK_SIZE) as usize;
            let data = v.chunk_bytes(c).await.map_err(std::io::Error::other)?;
            if data.len() >= want {
                return Ok::<_, std::io::Error>(data.slice(..want));
            }
            // A hole, or a chunk shorter than its place: zeros.
            let mut full = data.to_vec();
            full.resize(want, 0);
            Ok(bytes::Bytes::from(full))
        }
    });
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        urlencode(&name)
    );
    let mut r = Body::from_stream(body).into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    harden(&mut r);
    Ok(r)
}

/// A file name as a browser sends it: its last component, never a path.
fn upload_name(raw: &str) -> Result<String, PageError> {
    let name = raw.rsplit(['/', '\\']).next().unwrap_or("").to_string();
    if name.is_empty() || name == "." || name == ".." {
        return Err(PageError::BadRequest(format!("{raw:?} is not a file name")));
    }
    svol_sdk::check_remote_path(&name)?;
    Ok(name)
}

pub(crate) async fn upload(
    s: Signed,
    Path(vol): Path<String>,
    Query(at): Query<At>,
    mut form: Multipart,
) -> PageResult {
    let (v, dir) = open(&s, &vol, &at.path).await?;
    let bad =
        |e: axum::extract::multipart::MultipartError| PageError::BadRequest(format!("upload: {e}"));
    let mut csrf_ok = false;
    let mut stored = 0;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("csrf") => {
                let token = field.text().await.map_err(bad)?;
                s.check(&token)?;
                csrf_ok = true;
            }
            Some("files") => {
                // The CSRF field comes first in the form: nothing is
                // stored before it is checked.
                if !csrf_ok {
                    return Err(PageError::Forbidden(
                        "the upload form has no CSRF token".into(),
                    ));
                }
                let Some(raw) = field.file_name().map(str::to_string) else {
                    continue;
                };
                if raw.is_empty() {
                    continue;
                }
                let name = upload_name(&raw)?;
                let data = field.bytes().await.map_err(bad)?;
                let target = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                v.write_file(&target, data).await?;
                stored += 1;
            }
            _ => {}
        }
    }
    if stored == 0 {
        return Err(PageError::BadRequest(
            "choose at least one file to upload".into(),
        ));
    }
    Ok(Redirect::to(&format!(
        "/volumes/{}/files?path={}",
        v.info().id,
        urlencode(&dir)
    ))
    .into_response())
}

/// How many entries a delete confirmation counts before it says "more".
const COUNT_UP_TO: u32 = 1_000;

pub(crate) async fn delete_confirm(
    State(d): Shared,
    s: Signed,
    Path(vol): Path<String>,
    Query(at): Query<At>,
) -> PageResult {
    let (v, path) = open(&s, &vol, &at.path).await?;
    if path.is_empty() {
        return Err(PageError::BadRequest(
            "the volume's root cannot be deleted here; stop its app instead".into(),
        ));
    }
    let a = v.stat(&path).await?;
    let is_dir = a.is_dir();
    // Counted up to a bound: a page must not read 100,000 names to
    // say that there are many.
    let (entries, more) = if is_dir {
        let n = v.readdir(a.ino, 0, COUNT_UP_TO + 1).await?.entries.len();
        (n.min(COUNT_UP_TO as usize), n > COUNT_UP_TO as usize)
    } else {
        (0, false)
    };
    let info = v.info();
    Ok(page(
        &d,
        "delete.html",
        context! {
            volume => context! { id => info.id.clone(), name => info.name.clone() },
            path, is_dir, entries, more, size => a.size,
            ..s.base("volumes")
        },
    ))
}

#[derive(serde::Deserialize)]
pub(crate) struct DeleteForm {
    csrf: String,
    path: String,
}

pub(crate) async fn delete(
    s: Signed,
    Path(vol): Path<String>,
    axum::extract::Form(f): axum::extract::Form<DeleteForm>,
) -> PageResult {
    s.check(&f.csrf)?;
    let (v, path) = open(&s, &vol, &f.path).await?;
    if path.is_empty() {
        return Err(PageError::BadRequest(
            "the volume's root cannot be deleted".into(),
        ));
    }
    v.remove_file(&path, true).await?;
    let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    Ok(Redirect::to(&format!(
        "/volumes/{}/files?path={}",
        v.info().id,
        urlencode(parent)
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_keep_only_a_name() {
        assert_eq!(
            upload_name("C:\\Users\\me\\a.txt").ok().as_deref(),
            Some("a.txt")
        );
        assert_eq!(
            upload_name("../../etc/passwd").ok().as_deref(),
            Some("passwd")
        );
        assert!(upload_name("..").is_err());
        assert!(upload_name("dir/").is_err());
        assert!(upload_name("nul\0").is_err());
    }

    #[test]
    fn paths_and_links() {
        assert_eq!(clean("/a/b/").ok().as_deref(), Some("a/b"));
        assert!(clean("a/../b").is_err());
        assert_eq!(urlencode("a b/<x>"), "a%20b%2F%3Cx%3E");
        let c = crumbs("a/b");
        assert_eq!((c[1].name.as_str(), c[1].path.as_str()), ("b", "a/b"));
    }
}
