//! Finding 8 of the trust issue: the server's disk fills up. Writes fail
//! with ENOSPC (not EIO), nothing committed is damaged, reads go on, and
//! deleting gives the space back so writes work again.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

struct Tmpfs(std::path::PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn write_fsynced(p: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(p)?;
    f.write_all(data)?;
    f.sync_all()
}

fn statfs_free(p: &Path) -> u64 {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: zeroed statvfs is a valid out-parameter; c is NUL-terminated.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    s.f_bavail * s.f_frsize
}

#[test]
fn a_full_disk_gives_enospc_keeps_data_and_recovers() {
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("small");
    std::fs::create_dir(&disk).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=80m", "tmpfs"])
        .arg(&disk)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a small tmpfs for the data dir");
    let _tmpfs = Tmpfs(disk.clone());
    let server = Restartable::new(disk.join("data"), work.path().join("server.log"), &[]);
    server.ok(&["volume", "create", "full"]);
    let a = server.mount("full");

    let keep = random_bytes(6 << 20, 1);
    write_fsynced(&a.p("keep.bin"), &keep).unwrap();
    let mut written = Vec::new();
    let mut failure = None;
    for i in 0..40u64 {
        let data = random_bytes(4 << 20, 100 + i);
        match write_fsynced(&a.p(&format!("f{i}")), &data) {
            Ok(()) => written.push((i, data)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let e = failure.expect("80 MiB filled up");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "full disk: {e}");
    assert!(written.len() >= 5, "only {} files fit", written.len());
    // `df` on the mount tells the truth: nothing left for uploads.
    assert!(statfs_free(a.path()) < 4 << 20);

    // Reads go on, through a fresh mount too, and nothing committed broke.
    let b = server.mount("full");
    assert_eq!(std::fs::read(b.p("keep.bin")).unwrap(), keep);
    for (i, data) in &written {
        assert_eq!(&std::fs::read(b.p(&format!("f{i}"))).unwrap(), data);
    }
    assert!(server.ok(&["volume", "ls", "full"]).contains("keep.bin"));

    // Deleting frees the space (the server can still write metadata) and
    // writes work again.
    for (i, _) in written.iter().take(5) {
        std::fs::remove_file(a.p(&format!("f{i}"))).unwrap();
    }
    eventually(Duration::from_secs(30), "space freed", || {
        statfs_free(a.path()) >= 12 << 20
    });
    let again = random_bytes(8 << 20, 999);
    write_fsynced(&a.p("again.bin"), &again).unwrap();
    assert_eq!(std::fs::read(b.p("again.bin")).unwrap(), again);
    assert_eq!(std::fs::read(b.p("keep.bin")).unwrap(), keep);
    drop(a);
    drop(b);
    drop(server);
}
