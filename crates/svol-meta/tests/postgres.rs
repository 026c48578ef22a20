//! The PostgreSQL backend: the shared conformance suite on a real
//! PostgreSQL server (a throw-away cluster), plus what only a store shared
//! by several servers has: races between separate stores on one database,
//! the feed's order under concurrent writers, the doorbell.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use svol_meta::conformance::{cx, file, setup};
use svol_meta::*;

fn fresh() -> (MetaStore, ()) {
    let url = svol_testkit::pg().database();
    (
        MetaStore::postgres(&url).expect("open PostgreSQL store"),
        (),
    )
}

svol_meta::meta_conformance!(fresh());

#[test]
fn postgres_two_stores_on_one_database_see_each_other() {
    let url = svol_testkit::pg().database();
    let a = MetaStore::postgres(&url).unwrap();
    let b = MetaStore::postgres(&url).unwrap();
    let (_, vol) = setup(&a, "shared");
    let f = a
        .create(vol, vol, b"f", &file(0o644), true, &cx())
        .unwrap()
        .value;
    assert_eq!(b.lookup(vol, vol, b"f").unwrap().ino, f.ino);
    assert!(matches!(
        b.create(vol, vol, b"f", &file(0o644), true, &cx()),
        Err(MetaError::AlreadyExists(_))
    ));
}

/// Stores with their own connections stand in for servers: a name taken
/// by all of them at once (create, mkdir, link) has exactly one winner,
/// and the losers get `AlreadyExists`, never an error of the database.
#[test]
fn postgres_exclusive_races_between_servers_have_one_winner() {
    let url = svol_testkit::pg().database();
    let servers: Vec<MetaStore> = (0..4).map(|_| MetaStore::postgres(&url).unwrap()).collect();
    let (_, vol) = setup(&servers[0], "race");
    let target = servers[0]
        .create(vol, vol, b"target", &file(0o644), true, &cx())
        .unwrap()
        .value
        .ino;
    for round in 0..10u32 {
        for what in ["create", "mkdir", "link"] {
            let name = format!("{what}-{round}").into_bytes();
            let barrier = Arc::new(Barrier::new(servers.len() * 2));
            let results: Vec<Result<Attr>> = std::thread::scope(|s| {
                let handles: Vec<_> = servers
                    .iter()
                    .flat_map(|st| [st, st])
                    .map(|st| {
                        let barrier = barrier.clone();
                        let name = name.clone();
                        s.spawn(move || {
                            barrier.wait();
                            let node = NewNode {
                                kind: if what == "mkdir" {
                                    FileKind::Directory
                                } else {
                                    FileKind::Regular
                                },
                                ..file(0o755)
                            };
                            match what {
                                "link" => st.link(vol, target, vol, &name, &cx()),
                                _ => st.create(vol, vol, &name, &node, true, &cx()),
                            }
                            .map(|o| o.value)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let wins = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(wins, 1, "{what} {round}: {results:?}");
            for r in &results {
                assert!(
                    matches!(r, Ok(_) | Err(MetaError::AlreadyExists(_))),
                    "{what} {round}: {r:?}"
                );
            }
        }
    }
    // Every link won once: nlink is 1 + 10.
    assert_eq!(servers[3].getattr(vol, target).unwrap().nlink, 11);
}

/// Positions become visible in order even with many servers appending at
/// once: a tailer that follows the feed by position misses nothing.
#[test]
fn postgres_feed_tailer_misses_nothing_under_concurrent_writers() {
    let url = svol_testkit::pg().database();
    let servers: Vec<MetaStore> = (0..4).map(|_| MetaStore::postgres(&url).unwrap()).collect();
    let (_, vol) = setup(&servers[0], "feed");
    let start = servers[0].feed_head().unwrap();
    let done = AtomicBool::new(false);
    let seen = std::thread::scope(|s| {
        let tailer = s.spawn(|| {
            let reader = MetaStore::postgres(&url).unwrap();
            let mut after = start;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = reader.feed_since(after, 1000).unwrap();
                assert!(!page.gap);
                for e in &page.entries {
                    assert!(e.seq > after, "position {} after {after}", e.seq);
                    after = e.seq;
                    seen.push(e.seq);
                }
                if finished && page.entries.is_empty() {
                    return seen;
                }
            }
        });
        let writers: Vec<_> = servers
            .iter()
            .enumerate()
            .flat_map(|(i, st)| [(i, 0, st), (i, 1, st)])
            .map(|(i, j, st)| {
                s.spawn(move || {
                    for n in 0..40 {
                        let name = format!("f-{i}-{j}-{n}");
                        st.create(vol, vol, name.as_bytes(), &file(0o644), true, &cx())
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        tailer.join().unwrap()
    });
    // What a reader starting afresh finds is exactly what the tailer saw.
    let all: Vec<u64> = servers[0]
        .feed_since(start, 100_000)
        .unwrap()
        .entries
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(all.len(), 8 * 40);
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>(),
        all.iter().collect::<BTreeSet<_>>()
    );
}

/// Another server's change rings this one's doorbell (and a quiet feed
/// does not).
#[test]
fn postgres_doorbell_rings_for_another_servers_change() {
    let url = svol_testkit::pg().database();
    let a = MetaStore::postgres(&url).unwrap();
    let b = MetaStore::postgres(&url).unwrap();
    let (_, vol) = setup(&a, "bell");
    let mut bell = b.doorbell().unwrap().expect("PostgreSQL has a doorbell");
    // Rings from the setup above may be pending: drain them.
    while bell.wait(Duration::from_millis(200)).unwrap() {}
    assert!(!bell.wait(Duration::from_millis(300)).unwrap());
    a.create(vol, vol, b"x", &file(0o644), true, &cx()).unwrap();
    assert!(bell.wait(Duration::from_secs(5)).unwrap());
}

/// One server at a time leads the background loops; when the leader goes
/// (its connection closes), another takes over.
#[test]
fn postgres_one_leader_at_a_time_and_a_successor_when_it_goes() {
    let url = svol_testkit::pg().database();
    let a = MetaStore::postgres(&url).unwrap();
    let b = MetaStore::postgres(&url).unwrap();
    let mut ea = a.election();
    let mut eb = b.election();
    assert!(ea.leading());
    assert!(!eb.leading());
    assert!(ea.leading(), "the lead is kept");
    drop(ea);
    eventually_true(|| eb.leading());
    // SQLite has a single server: it always leads.
    let dir = tempfile::tempdir().unwrap();
    let lone = MetaStore::sqlite(&dir.path().join("m.db")).unwrap();
    assert!(lone.election().leading());
}

fn eventually_true(mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "not within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The feed's order, deterministically: a writer that appended (position
/// p) but has not committed holds back every later append, so no reader
/// can see a position above p and later find p appear behind it. The
/// uncommitted writer is played by a raw connection doing what an append
/// does; without the append's advisory lock, the store's change would
/// commit at p + 1 while p is still invisible, and this test fails.
#[test]
fn postgres_a_later_append_waits_for_an_earlier_uncommitted_one() {
    let url = svol_testkit::pg().database();
    let s = MetaStore::postgres(&url).unwrap();
    let (_, vol) = setup(&s, "order");
    let start = s.feed_head().unwrap();
    let mut raw = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut slow = raw.transaction().unwrap();
    // What `sql::feed::append` does, without committing ("svolfeed").
    slow.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&0x7376_6f6c_6665_6564_i64],
    )
    .unwrap();
    let p: i64 = slow
        .query_one(
            "INSERT INTO feed(volume, origin, inodes, entries, unlocked, deleted) \
             VALUES ($1, 'slow', ''::bytea, ''::bytea, ''::bytea, 0) RETURNING seq",
            &[&(vol as i64)],
        )
        .unwrap()
        .get(0);
    std::thread::scope(|sc| {
        let change = sc.spawn(|| {
            s.create(vol, vol, b"later", &file(0o644), true, &cx())
                .unwrap()
                .changes
                .feed
        });
        std::thread::sleep(Duration::from_millis(500));
        // Nothing past the uncommitted append is visible meanwhile.
        let page = s.feed_since(start, 100).unwrap();
        assert!(
            page.entries.iter().all(|e| (e.seq as i64) < p),
            "a later change became visible before position {p}: {:?}",
            page.entries.iter().map(|e| e.seq).collect::<Vec<_>>()
        );
        assert!(!change.is_finished(), "the later change did not wait");
        slow.commit().unwrap();
        let q = change.join().unwrap();
        assert!(q as i64 > p);
        let seqs: Vec<i64> = s
            .feed_since(start, 100)
            .unwrap()
            .entries
            .iter()
            .map(|e| e.seq as i64)
            .collect();
        assert!(seqs.contains(&p) && seqs.contains(&(q as i64)), "{seqs:?}");
    });
}
