//! The SDK's client, apps and volumes as Python classes. Every call
//! releases the GIL while it waits on the network (see `runtime.rs`).
//! Entries and infos cross as plain tuples and dicts; the Python half
//! gives them their public shape.

use std::sync::Arc;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use svol_sdk::{ClientConfig, ClientError};

use crate::errors::to_py;
use crate::runtime::block_on;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add_class::<App>()?;
    m.add_class::<Volume>()?;
    m.add_class::<ReadStream>()?;
    Ok(())
}

fn sdk<T>(r: Result<T, ClientError>) -> PyResult<T> {
    r.map_err(to_py)
}

/// A connection to a server as one workspace.
#[pyclass(module = "svol._native", frozen)]
pub(crate) struct Client {
    inner: svol_sdk::Client,
    config: ClientConfig,
}

#[pymethods]
impl Client {
    /// Connects with `server` and `token`, each looked up like the CLI
    /// does when not given (SVOL_SERVER / SVOL_TOKEN, SVOL_CONFIG,
    /// ~/.config/svol/config.toml, the local server's client.toml).
    #[new]
    #[pyo3(signature = (server=None, token=None))]
    fn new(py: Python<'_>, server: Option<String>, token: Option<String>) -> PyResult<Self> {
        let config = sdk(ClientConfig::resolve(server, token))?;
        let cfg = config.clone();
        let inner = block_on(
            py,
            async move { sdk(svol_sdk::Client::connect(&cfg).await) },
        )?;
        Ok(Client { inner, config })
    }

    /// The server address(es) this client talks to.
    #[getter]
    fn server(&self) -> String {
        self.config.server.clone()
    }

    /// The settings a child `svol` process needs to connect as this
    /// client, as environment variables (the token goes through the
    /// environment, never a command line another user could read).
    fn child_env(&self) -> Vec<(String, String)> {
        let c = &self.config;
        let mut env = vec![
            ("SVOL_SERVER".to_string(), c.server.clone()),
            ("SVOL_TOKEN".to_string(), c.token.clone()),
        ];
        let paths = [
            ("SVOL_CA", &c.tls.ca),
            ("SVOL_CLIENT_CERT", &c.tls.cert),
            ("SVOL_CLIENT_KEY", &c.tls.key),
        ];
        for (k, v) in paths {
            if let Some(p) = v {
                env.push((k.to_string(), p.display().to_string()));
            }
        }
        env
    }

    fn create_app(&self, py: Python<'_>, name: String) -> PyResult<App> {
        let c = self.inner.clone();
        let inner = block_on(
            py,
            async move { sdk(svol_sdk::App::create(&c, &name).await) },
        )?;
        Ok(App { inner })
    }

    fn lookup_app(&self, py: Python<'_>, id: String) -> PyResult<App> {
        let c = self.inner.clone();
        let inner = block_on(py, async move { sdk(svol_sdk::App::lookup(&c, &id).await) })?;
        Ok(App { inner })
    }

    fn volume_from_name(
        &self,
        py: Python<'_>,
        name: String,
        create_if_missing: bool,
    ) -> PyResult<Volume> {
        let c = self.inner.clone();
        let v = block_on(py, async move {
            sdk(svol_sdk::Volume::from_name(&c, &name, create_if_missing).await)
        })?;
        Ok(Volume::wrap(v))
    }

    fn delete_volume(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let c = self.inner.clone();
        block_on(py, async move { sdk(c.delete_volume(&name, false).await) })
    }

    fn list_volumes<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let c = self.inner.clone();
        let vols = block_on(py, async move { sdk(c.list_volumes().await) })?;
        vols.iter().map(|v| volume_dict(py, v)).collect()
    }

    /// A new volume `name` holding a copy of volume or snapshot `source`.
    fn clone_volume(&self, py: Python<'_>, source: String, name: String) -> PyResult<Volume> {
        let c = self.inner.clone();
        let v = block_on(py, async move {
            let info = sdk(c.clone_volume(&source, &name).await)?;
            sdk(c.volume(&info.id).await)
        })?;
        Ok(Volume::wrap(v))
    }

    /// The workspace's trash: (volumes as dicts, retention in seconds).
    fn list_trash<'py>(&self, py: Python<'py>) -> PyResult<(Vec<Bound<'py, PyDict>>, u64)> {
        let c = self.inner.clone();
        let t = block_on(py, async move { sdk(c.list_trash().await) })?;
        let mut out = Vec::with_capacity(t.volumes.len());
        for v in &t.volumes {
            let d = PyDict::new(py);
            d.set_item("id", &v.id)?;
            d.set_item("name", &v.name)?;
            d.set_item("deleted", v.deleted_unix)?;
            d.set_item("purge", v.purge_unix)?;
            d.set_item("bytes", v.bytes)?;
            d.set_item("files", v.files)?;
            out.push(d);
        }
        Ok((out, t.retention_seconds))
    }

    #[pyo3(signature = (id, name=None))]
    fn restore_trash(&self, py: Python<'_>, id: String, name: Option<String>) -> PyResult<Volume> {
        let c = self.inner.clone();
        let v = block_on(py, async move {
            let info = sdk(c.restore_trash(&id, name.as_deref()).await)?;
            sdk(c.volume(&info.id).await)
        })?;
        Ok(Volume::wrap(v))
    }

    #[pyo3(signature = (id=None))]
    fn purge_trash(&self, py: Python<'_>, id: Option<String>) -> PyResult<Vec<String>> {
        let c = self.inner.clone();
        block_on(py, async move { sdk(c.purge_trash(id.as_deref()).await) })
    }
}

/// An app: owns ephemeral volumes, which are deleted when it stops.
#[pyclass(module = "svol._native", frozen)]
pub(crate) struct App {
    inner: svol_sdk::App,
}

#[pymethods]
impl App {
    #[getter]
    fn id(&self) -> String {
        self.inner.id().to_string()
    }

    #[getter]
    fn name(&self) -> String {
        self.inner.info().name.clone()
    }

    /// Stops the app; returns its state afterwards ("stopped").
    fn stop(&self, py: Python<'_>) -> PyResult<String> {
        let a = self.inner.clone();
        let info = block_on(py, async move { sdk(a.stop().await) })?;
        Ok(info.state)
    }

    /// The app's state as the server has it now ("running", "stopped").
    fn state(&self, py: Python<'_>) -> PyResult<String> {
        let c = self.inner.client().clone();
        let id = self.inner.id().to_string();
        let a = block_on(py, async move { sdk(svol_sdk::App::lookup(&c, &id).await) })?;
        Ok(a.info().state.clone())
    }

    fn ephemeral_volume(&self, py: Python<'_>) -> PyResult<Volume> {
        let a = self.inner.clone();
        let v = block_on(
            py,
            async move { sdk(svol_sdk::Volume::ephemeral(&a).await) },
        )?;
        Ok(Volume::wrap(v))
    }
}

/// A volume and its files, reached without any mount.
#[pyclass(module = "svol._native", frozen)]
pub(crate) struct Volume {
    inner: std::sync::RwLock<Arc<svol_sdk::Volume>>,
}

impl Volume {
    fn wrap(v: svol_sdk::Volume) -> Self {
        Volume {
            inner: std::sync::RwLock::new(Arc::new(v)),
        }
    }

    fn get(&self) -> Arc<svol_sdk::Volume> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn deleted_pick(
    path: String,
    since: Option<f64>,
    id: Option<i64>,
) -> PyResult<svol_sdk::DeletedPick> {
    let since = match since {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err(to_py(ClientError::InvalidArgument(format!(
                "since must be a positive number of seconds, not {s}"
            ))))
        }
        Some(s) => Some(std::time::Duration::from_secs_f64(s.ceil())),
        None => None,
    };
    Ok(svol_sdk::DeletedPick { path, since, id })
}

fn volume_dict<'py>(py: Python<'py>, v: &svol_sdk::VolumeInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", &v.id)?;
    d.set_item("name", &v.name)?;
    d.set_item("created", v.created_unix)?;
    d.set_item("bytes", v.bytes)?;
    d.set_item("files", v.files)?;
    d.set_item("app", &v.app)?;
    d.set_item("ephemeral", v.ephemeral)?;
    d.set_item("stored_bytes", v.stored_bytes)?;
    d.set_item("snapshot_of", &v.snapshot_of)?;
    d.set_item("max_bytes", v.max_bytes)?;
    d.set_item("max_files", v.max_files)?;
    d.set_item("inodes", v.inodes)?;
    d.set_item("file_trash_seconds", v.file_trash_seconds)?;
    d.set_item("trash_files", v.trash_files)?;
    d.set_item("trash_bytes", v.trash_bytes)?;
    Ok(d)
}

/// (id, path, size, deleted_ms, purge_ms) of a file in a volume's trash.
type DeletedTuple = (i64, String, u64, i64, i64);

/// (name, kind, size, mtime, mode) of an entry.
type EntryTuple = (String, &'static str, u64, f64, u32);

fn entry_tuple(name: String, a: &svol_sdk::Attr) -> EntryTuple {
    let mtime = a.mtime.sec as f64 + f64::from(a.mtime.nsec) / 1e9;
    (name, a.kind.name(), a.size, mtime, a.mode)
}

#[pymethods]
impl Volume {
    #[getter]
    fn id(&self) -> String {
        self.get().info().id.clone()
    }

    #[getter]
    fn name(&self) -> String {
        self.get().info().name.clone()
    }

    /// The volume's description as the server has it now.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let v = self.get();
        let id = v.info().id.clone();
        let info = block_on(py, async move { sdk(v.client().volume_info(&id).await) })?;
        volume_dict(py, &info)
    }

    /// A read-only snapshot `name@snapshot` of this volume.
    fn snapshot(&self, py: Python<'_>, snapshot: String) -> PyResult<Volume> {
        let v = self.get();
        let s = block_on(py, async move {
            let c = v.client().clone();
            let info = sdk(c.snapshot_volume(&v.info().name, &snapshot).await)?;
            sdk(c.volume(&info.id).await)
        })?;
        Ok(Volume::wrap(s))
    }

    fn snapshots<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let v = self.get();
        let list = block_on(py, async move {
            sdk(v.client().list_snapshots(&v.info().name).await)
        })?;
        list.iter().map(|s| volume_dict(py, s)).collect()
    }

    /// Sets this volume's quotas (None: unchanged, 0: no limit).
    #[pyo3(signature = (max_bytes=None, max_files=None))]
    fn set_quota<'py>(
        &self,
        py: Python<'py>,
        max_bytes: Option<u64>,
        max_files: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let v = self.get();
        let info = block_on(py, async move {
            sdk(v
                .client()
                .set_volume_quota(&v.info().name, max_bytes, max_files)
                .await)
        })?;
        volume_dict(py, &info)
    }

    /// Keeps files removed from this volume for `seconds` (0: not at all).
    fn set_file_trash<'py>(&self, py: Python<'py>, seconds: u64) -> PyResult<Bound<'py, PyDict>> {
        let v = self.get();
        let keep = std::time::Duration::from_secs(seconds);
        let info = block_on(py, async move {
            sdk(v.client().set_file_trash(&v.info().name, keep).await)
        })?;
        volume_dict(py, &info)
    }

    /// (id, path, size, deleted_ms, purge_ms) of the removed files this
    /// volume's trash keeps at `path` or below, newest first.
    #[pyo3(signature = (path, since=None))]
    fn deleted_files(
        &self,
        py: Python<'_>,
        path: String,
        since: Option<f64>,
    ) -> PyResult<Vec<DeletedTuple>> {
        let v = self.get();
        let pick = deleted_pick(path, since, None)?;
        let files = block_on(py, async move {
            sdk(v.client().list_deleted_files(&v.info().name, &pick).await)
        })?;
        Ok(files
            .into_iter()
            .map(|f| {
                let path = String::from_utf8_lossy(&f.path).into_owned();
                (f.id, path, f.size, f.deleted_unix_ms, f.purge_unix_ms)
            })
            .collect())
    }

    /// Restores removed files; returns (from, to) paths.
    #[pyo3(signature = (path, since=None, id=None, to=None))]
    fn undelete(
        &self,
        py: Python<'_>,
        path: String,
        since: Option<f64>,
        id: Option<i64>,
        to: Option<String>,
    ) -> PyResult<Vec<(String, String)>> {
        let v = self.get();
        let pick = deleted_pick(path, since, id)?;
        block_on(py, async move {
            let c = v.client();
            sdk(c
                .restore_deleted_files(&v.info().name, &pick, to.as_deref())
                .await)
        })
    }

    /// Drops removed files from this volume's trash now; returns how many.
    #[pyo3(signature = (path, since=None))]
    fn purge_deleted_files(
        &self,
        py: Python<'_>,
        path: String,
        since: Option<f64>,
    ) -> PyResult<u64> {
        let v = self.get();
        let pick = deleted_pick(path, since, None)?;
        block_on(py, async move {
            sdk(v.client().purge_deleted_files(&v.info().name, &pick).await)
        })
    }

    /// Puts snapshot `snapshot`'s files in place of this volume's.
    fn restore(&self, py: Python<'_>, snapshot: String) -> PyResult<()> {
        let v = self.get();
        block_on(py, async move {
            sdk(v.client().restore_volume(&v.info().name, &snapshot).await).map(|_| ())
        })
    }

    /// Names this ephemeral volume and makes it outlive its app.
    fn persist(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let mut v = (*self.get()).clone();
        let v = block_on(py, async move {
            sdk(v.persist(&name).await)?;
            Ok(v)
        })?;
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(v);
        Ok(())
    }

    /// The whole contents of file `path`.
    fn read_file<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.get();
        let data = block_on(py, async move { sdk(v.read_file(&path).await) })?;
        Ok(PyBytes::new(py, &data))
    }

    /// A stream of the contents of file `path`, one block at a time.
    fn open_read(&self, py: Python<'_>, path: String) -> PyResult<ReadStream> {
        let v = self.get();
        let v2 = v.clone();
        let (size, chunks) = block_on(py, async move { sdk(v2.read_plan(&path).await) })?;
        Ok(ReadStream {
            vol: v,
            state: std::sync::Mutex::new(StreamState {
                chunks: chunks.into_iter(),
                left: size,
            }),
            size,
        })
    }

    /// Writes `data` as file `path` atomically, creating parent directories.
    fn write_file(&self, py: Python<'_>, path: String, data: Vec<u8>) -> PyResult<u64> {
        let v = self.get();
        let attr = block_on(py, async move {
            sdk(v.write_file(&path, Bytes::from(data)).await)
        })?;
        Ok(attr.size)
    }

    /// Entries of directory `path` as (path, kind, size, mtime, mode);
    /// with `recursive`, of the whole tree below it.
    fn listdir(&self, py: Python<'_>, path: String, recursive: bool) -> PyResult<Vec<EntryTuple>> {
        let v = self.get();
        block_on(py, async move {
            let root = path.trim_matches('/').to_string();
            let a = sdk(v.stat(&path).await)?;
            if !a.is_dir() {
                return Ok(vec![entry_tuple(root, &a)]);
            }
            let mut out = Vec::new();
            // Directories by inode: the path of each is known, so a
            // listing costs its readdir pages and no path walk.
            let mut todo = vec![(root, a.ino)];
            while let Some((dir, ino)) = todo.pop() {
                for e in sdk(v.readdir_all(ino).await)? {
                    let name = String::from_utf8_lossy(&e.name);
                    let full = if dir.is_empty() {
                        name.into_owned()
                    } else {
                        format!("{dir}/{name}")
                    };
                    let attr = e.attr;
                    if recursive && attr.is_dir() {
                        todo.push((full.clone(), attr.ino));
                    }
                    out.push(entry_tuple(full, &attr));
                }
            }
            Ok(out)
        })
    }

    /// (path, kind, size, mtime, mode) of `path` itself.
    fn stat(&self, py: Python<'_>, path: String) -> PyResult<EntryTuple> {
        let v = self.get();
        let a = block_on(
            py,
            async move { sdk(v.stat(&path).await).map(|a| (path, a)) },
        )?;
        Ok(entry_tuple(a.0.trim_start_matches('/').to_string(), &a.1))
    }

    fn remove_file(&self, py: Python<'_>, path: String, recursive: bool) -> PyResult<()> {
        let v = self.get();
        block_on(
            py,
            async move { sdk(v.remove_file(&path, recursive).await) },
        )
    }

    fn copy_files(
        &self,
        py: Python<'_>,
        srcs: Vec<String>,
        dst: String,
        recursive: bool,
    ) -> PyResult<()> {
        let v = self.get();
        block_on(py, async move {
            let refs: Vec<&str> = srcs.iter().map(String::as_str).collect();
            sdk(v.copy_files(&refs, &dst, recursive).await)
        })
    }

    fn mkdirs(&self, py: Python<'_>, path: String) -> PyResult<()> {
        let v = self.get();
        block_on(py, async move { sdk(v.mkdirs(&path).await).map(|_| ()) })
    }

    /// Uploads `items`, each ("file", local path, remote path) or ("data",
    /// bytes, remote path), sending only blocks the server lacks; returns
    /// the block bytes actually sent.
    fn batch_upload(
        &self,
        py: Python<'_>,
        items: Vec<(String, Bound<'_, PyAny>, String)>,
        force: bool,
    ) -> PyResult<u64> {
        enum Item {
            File(String, String),
            Data(Vec<u8>, String),
        }
        let mut plan = Vec::new();
        for (kind, what, remote) in items {
            match kind.as_str() {
                "file" => plan.push(Item::File(what.extract()?, remote)),
                "data" => plan.push(Item::Data(what.extract()?, remote)),
                other => {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "upload item kind {other:?} is neither \"file\" nor \"data\""
                    )))
                }
            }
        }
        let v = self.get();
        block_on(py, async move {
            let before = v.client().bytes_uploaded();
            let mut b = v.batch_upload(force);
            for item in plan {
                b = match item {
                    Item::File(local, remote) => b.put_file(local, &remote),
                    Item::Data(data, remote) => b.put_data(Bytes::from(data), &remote),
                };
            }
            sdk(b.commit().await)?;
            Ok(v.client().bytes_uploaded().saturating_sub(before))
        })
    }
}

struct StreamState {
    chunks: std::vec::IntoIter<Option<svol_sdk::Chunk>>,
    left: u64,
}

/// The contents of one file, fetched a block (≤ 4 MiB) per step, so a file
/// of any size streams in bounded memory. Reads the version that was
/// current when it was opened.
#[pyclass(module = "svol._native", frozen)]
pub(crate) struct ReadStream {
    vol: Arc<svol_sdk::Volume>,
    state: std::sync::Mutex<StreamState>,
    size: u64,
}

#[pymethods]
impl ReadStream {
    #[getter]
    fn size(&self) -> u64 {
        self.size
    }

    /// The next piece of the file, or None at its end.
    fn next_chunk<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let (chunk, want) = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.left == 0 {
                return Ok(None);
            }
            let Some(c) = s.chunks.next() else {
                return Ok(None);
            };
            let want = s.left.min(svol_sdk::CHUNK_SIZE);
            s.left -= want;
            (c, want as usize)
        };
        let v = self.vol.clone();
        let data = block_on(py, async move { sdk(v.chunk_bytes(chunk).await) })?;
        if data.len() >= want {
            return Ok(Some(PyBytes::new(py, &data[..want])));
        }
        // A hole or a short chunk reads as zeros up to the chunk's end.
        let mut full = data.to_vec();
        full.resize(want, 0);
        Ok(Some(PyBytes::new(py, &full)))
    }
}
