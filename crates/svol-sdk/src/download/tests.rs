//! The download against a test double of a malicious server: names with
//! `..` and `/`, symlinks planted where files follow, setuid bits.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use super::*;

/// A node: its attributes, a directory's children (name, ino), a file's
/// bytes or a symlink's target.
type Node = (Attr, Vec<(Vec<u8>, u64)>, Vec<u8>);

/// A tree served from memory.
#[derive(Default)]
struct Fake {
    nodes: HashMap<u64, Node>,
}

fn attr(ino: u64, kind: FileKind, mode: u32, size: u64) -> Attr {
    Attr {
        ino,
        kind,
        mode,
        size,
        ..Default::default()
    }
}

impl Fake {
    fn dir(&mut self, ino: u64, children: &[(&[u8], u64)]) -> &mut Self {
        let kids = children.iter().map(|(n, i)| (n.to_vec(), *i)).collect();
        self.nodes.insert(
            ino,
            (attr(ino, FileKind::Directory, 0o755, 0), kids, vec![]),
        );
        self
    }
    fn file(&mut self, ino: u64, mode: u32, data: &[u8]) -> &mut Self {
        let a = attr(ino, FileKind::Regular, mode, data.len() as u64);
        self.nodes.insert(ino, (a, vec![], data.to_vec()));
        self
    }
    fn link(&mut self, ino: u64, target: &[u8]) -> &mut Self {
        let a = attr(ino, FileKind::Symlink, 0o777, target.len() as u64);
        self.nodes.insert(ino, (a, vec![], target.to_vec()));
        self
    }
    fn attr(&self, ino: u64) -> Attr {
        self.nodes[&ino].0
    }
}

impl Source for Fake {
    fn list<'a>(&'a self, dir: u64) -> Fut<'a, Vec<DirEntry>> {
        let v = self.nodes[&dir]
            .1
            .iter()
            .map(|(name, ino)| DirEntry {
                name: name.clone().into(),
                cookie: *ino,
                attr: self.attr(*ino),
            })
            .collect();
        Box::pin(async move { Ok(v) })
    }
    fn link_target<'a>(&'a self, ino: u64) -> Fut<'a, Vec<u8>> {
        let t = self.nodes[&ino].2.clone();
        Box::pin(async move { Ok(t) })
    }
    fn contents<'a>(
        &'a self,
        ino: u64,
        out: &'a mut (dyn Write + Send),
        _: &'a Option<Progress>,
    ) -> Fut<'a, ()> {
        let d = self.nodes[&ino].2.clone();
        Box::pin(async move { Ok(out.write_all(&d)?) })
    }
}

async fn get(f: &Fake, root: u64, to: &Path, opts: DownloadOptions) -> Result<()> {
    download(f, &f.attr(root), to, opts, &None).await
}

#[tokio::test]
async fn symlink_planted_before_a_file_is_never_written_through() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let mut f = Fake::default();
    // The volume holds `evil.svol-part -> victim`, `evil -> victim` and a
    // file `evil` listed after both (a malicious server may list a name
    // twice).
    f.dir(1, &[(b"evil.svol-part", 2), (b"evil", 3), (b"evil", 4)])
        .link(2, victim.to_str().unwrap().as_bytes())
        .link(3, victim.to_str().unwrap().as_bytes())
        .file(4, 0o644, b"attacker bytes");
    let target = tempfile::tempdir().unwrap();
    get(&f, 1, target.path(), DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let evil = target.path().join("evil");
    assert!(!evil.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&evil).unwrap(), b"attacker bytes");
}

#[tokio::test]
async fn names_with_dot_dot_or_slash_are_refused() {
    for bad in [&b".."[..], b"../escape", b"a/b", b".", b"", b"nul\0"] {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("t");
        let mut f = Fake::default();
        f.dir(1, &[(bad, 2)]).file(2, 0o644, b"x");
        let err = get(&f, 1, &target, DownloadOptions::default())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("unsafe name"),
            "{:?}: {err}",
            String::from_utf8_lossy(bad)
        );
        let mut left: Vec<_> = std::fs::read_dir(outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, vec![std::ffi::OsString::from("t")], "nothing outside");
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    }
}

#[tokio::test]
async fn a_directory_symlink_is_not_descended_into() {
    let outside = tempfile::tempdir().unwrap();
    let mut f = Fake::default();
    // `d -> outside`, then a directory `d` with a file: the file must not
    // land in `outside`.
    f.dir(1, &[(b"d", 2), (b"d", 3)])
        .link(2, outside.path().to_str().unwrap().as_bytes())
        .dir(3, &[(b"planted", 4)])
        .file(4, 0o644, b"x");
    let target = tempfile::tempdir().unwrap();
    let err = get(&f, 1, target.path(), DownloadOptions::default()).await;
    assert!(err.is_err(), "a symlink where a directory goes is an error");
    assert!(!outside.path().join("planted").exists());
}

#[tokio::test]
async fn setuid_and_sticky_bits_are_dropped_unless_asked() {
    let mut f = Fake::default();
    f.dir(1, &[(b"suid", 2), (b"sticky", 3)])
        .file(2, 0o4755, b"#!/bin/sh\n")
        .dir(3, &[]);
    f.nodes.get_mut(&3).unwrap().0.mode = 0o1777;
    let target = tempfile::tempdir().unwrap();
    get(&f, 1, target.path(), DownloadOptions::default())
        .await
        .unwrap();
    let mode = |n: &str| {
        std::fs::metadata(target.path().join(n))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("suid"), 0o755);
    assert_eq!(mode("sticky"), 0o777);
    let kept = tempfile::tempdir().unwrap();
    let opts = DownloadOptions {
        keep_special_bits: true,
    };
    download(&f, &f.attr(1), kept.path(), opts, &None)
        .await
        .unwrap();
    let m = std::fs::metadata(kept.path().join("suid")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
}

#[tokio::test]
async fn a_get_into_a_directory_with_files_replaces_and_keeps() {
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("a"), b"old a").unwrap();
    std::fs::write(target.path().join("keep"), b"mine").unwrap();
    std::fs::create_dir(target.path().join("sub")).unwrap();
    std::fs::write(target.path().join("sub/old"), b"old").unwrap();
    let mut f = Fake::default();
    f.dir(1, &[(b"a", 2), (b"sub", 3)])
        .file(2, 0o600, b"new a")
        .dir(3, &[(b"b", 4)])
        .file(4, 0o644, b"b");
    get(&f, 1, target.path(), DownloadOptions::default())
        .await
        .unwrap();
    let read = |n: &str| std::fs::read(target.path().join(n)).unwrap();
    assert_eq!(read("a"), b"new a");
    assert_eq!(read("keep"), b"mine");
    assert_eq!(read("sub/old"), b"old");
    assert_eq!(read("sub/b"), b"b");
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(target.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("svol-part")), "{names:?}");
}

#[tokio::test]
async fn a_deep_tree_is_walked_without_recursion() {
    let mut f = Fake::default();
    let depth = 300u64;
    for i in 1..depth {
        f.dir(i, &[(b"d", i + 1)]);
    }
    f.dir(depth, &[(b"leaf", depth + 1)])
        .file(depth + 1, 0o644, b"deep");
    let target = tempfile::tempdir().unwrap();
    get(&f, 1, target.path(), DownloadOptions::default())
        .await
        .unwrap();
    let mut p = target.path().to_path_buf();
    for _ in 1..depth {
        p.push("d");
    }
    assert_eq!(std::fs::read(p.join("leaf")).unwrap(), b"deep");
}
