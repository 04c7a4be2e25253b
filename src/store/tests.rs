use std::path::Path;
use std::time::Duration;

use sqlx::{AnyConnection, Connection, Row};
use tokio::time::timeout;

use super::*;

/// A timestamp from its text.
fn t(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("a timestamp")
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("cuedeck.db").display())
}

/// A fresh, migrated database on one backend.
struct TestDb {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = db_url(dir.path());
        let store = Store::open(&url).await.expect("open sqlite");
        TestDb {
            store,
            url,
            _dir: Some(dir),
        }
    }

    /// A new database in the PostgreSQL server of `CUEDECK_TEST_POSTGRES_URL`. Without it
    /// the test is skipped with a printed reason — except under `CI=true`, where it fails.
    async fn postgres() -> Option<TestDb> {
        let Ok(base) = std::env::var("CUEDECK_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CUEDECK_TEST_POSTGRES_URL must be set under CI=true"
            );
            eprintln!("skipped: set CUEDECK_TEST_POSTGRES_URL to run the PostgreSQL store tests");
            return None;
        };
        sqlx::any::install_default_drivers();
        let name = format!("cuedeck_t_{}", ulid::Ulid::new().to_string().to_lowercase());
        let mut admin = AnyConnection::connect(&base)
            .await
            .expect("connect to PostgreSQL");
        // The name is generated here, not input: safe to splice.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.expect("close");
        let (prefix, query) = base
            .split_once('?')
            .map_or((base.as_str(), None), |(p, q)| (p, Some(q)));
        let server = prefix.rsplit_once('/').map_or(prefix, |(s, _)| s);
        let url = match query {
            Some(q) => format!("{server}/{name}?{q}"),
            None => format!("{server}/{name}"),
        };
        let store = Store::open(&url).await.expect("open postgres");
        Some(TestDb {
            store,
            url,
            _dir: None,
        })
    }
}

/// Runs each named test body on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::TestDb::sqlite().await).await
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(db) = super::TestDb::postgres().await {
                        super::$name(db).await
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    rows_round_trip_with_nulls_and_bools,
    outcomes_keep_history,
    calls_upsert_and_end,
    writer_writes_every_record_once_under_concurrency,
    send_after_the_writer_is_gone_is_closed,
    writer_retries_a_failed_batch_without_losing_it,
    a_record_the_database_rejects_is_dead_lettered_and_the_queue_moves_on,
);

fn exposure(display_id: &str, call_id: &str) -> ExposureRow {
    ExposureRow {
        display_id: display_id.to_string(),
        ts: t("2026-11-23T10:00:00.123Z"),
        call_id: call_id.to_string(),
        deal_id: Some("d-9".to_string()),
        rep_id: Some("r-7".to_string()),
        card_id: "objection-price".to_string(),
        experiment_key: Some("price-2026q4".to_string()),
        variant: Some("short".to_string()),
        shown: true,
        reason: "shown".to_string(),
        phrase: "price is too high".to_string(),
        speaker: "prospect".to_string(),
        segment_id: "s-4".to_string(),
        engine_us: 7,
        library_version: "sha256:abc".to_string(),
    }
}

async fn count(store: &Store, table: &str) -> i64 {
    let sql = match table {
        "exposures" => "SELECT COUNT(*) AS n FROM exposures",
        "distinct_exposures" => "SELECT COUNT(DISTINCT display_id) AS n FROM exposures",
        "calls" => "SELECT COUNT(*) AS n FROM calls",
        other => panic!("no count query for {other}"),
    };
    let row = sqlx::query(sql)
        .fetch_one(&store.pool)
        .await
        .expect("count query");
    row.try_get::<i64, _>("n").expect("count column")
}

#[tokio::test]
async fn open_creates_file_migrates_twice_and_uses_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db_url(dir.path());
    assert!(!dir.path().join("cuedeck.db").exists());

    let store = Store::open(&url).await.expect("first open");
    assert!(dir.path().join("cuedeck.db").exists());
    store.ping().await.expect("ping");
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .expect("journal_mode")
        .try_get(0)
        .expect("journal_mode column");
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    store.close().await;

    let again = Store::open(&url)
        .await
        .expect("second open re-runs migrations");
    assert!(again.exposures(None).await.expect("read").is_empty());
    again.close().await;
}

async fn rows_round_trip_with_nulls_and_bools(db: TestDb) {
    let store = db.store.clone();

    let full = ExposureRow {
        engine_us: 9_000_000_000, // beyond 32 bits
        ..exposure("01A", "c-1")
    };
    let bare = ExposureRow {
        display_id: "01B".to_string(),
        ts: t("2026-11-23T10:00:01.000Z"),
        deal_id: None,
        rep_id: None,
        experiment_key: None,
        variant: None,
        shown: false,
        reason: "cooldown".to_string(),
        ..exposure("01B", "c-1")
    };
    let other_call = ExposureRow {
        ts: t("2026-11-23T09:00:00.000Z"),
        ..exposure("01C", "c-2")
    };
    let feedback = FeedbackRow {
        display_id: "01A".to_string(),
        ts: t("2026-11-23T10:00:02.000Z"),
        action: "useful".to_string(),
    };
    let unknown_feedback = FeedbackRow {
        display_id: "no-such-display".to_string(),
        ts: t("2026-11-23T10:00:03.000Z"),
        action: "clicked".to_string(),
    };
    store
        .write_batch(&[
            Record::Exposure(bare.clone()),
            Record::Exposure(full.clone()),
            Record::Exposure(other_call.clone()),
            Record::Feedback(feedback.clone()),
            Record::Feedback(unknown_feedback.clone()),
        ])
        .await
        .expect("write");

    assert_eq!(
        store.exposures(Some("c-1")).await.expect("read c-1"),
        vec![full.clone(), bare.clone()]
    );
    assert_eq!(
        store.exposures(None).await.expect("read all"),
        vec![other_call, full.clone(), bare]
    );
    assert!(
        store
            .exposures(Some("c-404"))
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(
        store.feedback(None).await.expect("feedback"),
        vec![feedback.clone(), unknown_feedback]
    );
    assert_eq!(
        store.feedback(Some("01A")).await.expect("feedback 01A"),
        vec![feedback.clone()]
    );

    // A retried batch (same display ids, same feedback) neither fails nor duplicates.
    store
        .write_batch(&[Record::Exposure(full), Record::Feedback(feedback)])
        .await
        .expect("rewrite");
    assert_eq!(count(&store, "exposures").await, 3);
    assert_eq!(store.feedback(None).await.expect("feedback").len(), 2);
}

async fn outcomes_keep_history(db: TestDb) {
    let store = db.store.clone();
    let open = OutcomeRow {
        deal_id: "d-9".to_string(),
        outcome: "open".to_string(),
        amount: None,
        currency: None,
        closed_at: None,
        updated_at: None,
        received_at: t("2026-11-20T10:00:00.000Z"),
    };
    let won = OutcomeRow {
        outcome: "won".to_string(),
        amount: Some(12000.5),
        currency: Some("USD".to_string()),
        closed_at: Some(t("2026-11-20T10:00:00Z")),
        updated_at: None,
        ..open.clone()
    };
    store
        .insert_outcomes(&[open.clone(), won.clone()])
        .await
        .expect("insert");
    assert_eq!(
        store.outcomes(Some("d-9")).await.expect("read"),
        vec![open, won]
    );
    assert!(store.outcomes(Some("d-1")).await.expect("read").is_empty());
}

async fn calls_upsert_and_end(db: TestDb) {
    let store = db.store.clone();
    let first = CallRow {
        call_id: "c-1".to_string(),
        deal_id: Some("d-9".to_string()),
        rep_id: None,
        context: r#"{"deal_stage":"evaluation"}"#.to_string(),
        started_at: t("2026-11-23T10:00:00.000Z"),
    };
    store
        .write_batch(&[
            Record::CallStarted(first.clone()),
            Record::CallEnded {
                call_id: "c-1".to_string(),
                ended_at: t("2026-11-23T10:05:00.000Z"),
            },
        ])
        .await
        .expect("start and end");
    assert_eq!(
        store.call("c-1").await.expect("read"),
        Some((first.clone(), Some(t("2026-11-23T10:05:00.000Z"))))
    );

    // Reconnect: one row, started_at kept, ended_at cleared, context updated.
    let reconnect = CallRow {
        context: r#"{"deal_stage":"negotiation"}"#.to_string(),
        started_at: t("2026-11-23T10:06:00.000Z"),
        ..first.clone()
    };
    store
        .write_batch(&[Record::CallStarted(reconnect.clone())])
        .await
        .expect("reconnect");
    assert_eq!(count(&store, "calls").await, 1);
    let (row, ended) = store.call("c-1").await.expect("read").expect("row");
    assert_eq!(row.started_at, first.started_at);
    assert_eq!(row.context, reconnect.context);
    assert_eq!(ended, None);

    store
        .write_batch(&[Record::CallEnded {
            call_id: "c-1".to_string(),
            ended_at: t("2026-11-23T10:09:00.000Z"),
        }])
        .await
        .expect("end");
    let (_, ended) = store.call("c-1").await.expect("read").expect("row");
    assert_eq!(ended, Some(t("2026-11-23T10:09:00.000Z")));
    assert_eq!(store.call("c-404").await.expect("read"), None);
}

async fn writer_writes_every_record_once_under_concurrency(db: TestDb) {
    let store = db.store.clone();
    let (handle, task) = spawn_writer(store.clone(), 64);

    let producers: Vec<_> = (0..5)
        .map(|p| {
            let handle = handle.clone();
            tokio::spawn(async move {
                for i in 0..1_000 {
                    let id = format!("p{p}-{i:04}");
                    handle
                        .send(Record::Exposure(exposure(&id, &format!("c-{p}"))))
                        .await
                        .expect("send");
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.expect("producer");
    }
    // Stats do not keep the writer alive (a StoreHandle clone would).
    let stats = handle.stats();
    drop(handle);
    assert_eq!(task.finish().await.expect("finish"), 5_000);
    assert_eq!(stats.written(), 5_000);
    assert_eq!(stats.queue_depth(), 0);
    assert_eq!(count(&store, "exposures").await, 5_000);
    assert_eq!(count(&store, "distinct_exposures").await, 5_000);
    assert_eq!(
        store.exposures(Some("c-3")).await.expect("read").len(),
        1_000
    );
}

/// Sends exposures `{prefix}-NNN` of call `c-{prefix}` until one does not complete within
/// 50 ms (it is cancelled before it was queued), pausing `pause` after each; returns how
/// many were sent.
async fn send_until_one_waits(handle: &StoreHandle, prefix: &str, pause: Duration) -> i64 {
    let mut sent = 0;
    loop {
        let id = format!("{prefix}-{sent:03}");
        let record = Record::Exposure(exposure(&id, &format!("c-{prefix}")));
        match timeout(Duration::from_millis(50), handle.send(record)).await {
            Ok(result) => {
                result.expect("send");
                sent += 1;
                assert!(sent < 100, "the queue never filled");
                tokio::time::sleep(pause).await;
            }
            Err(_) => return sent,
        }
    }
}

#[tokio::test]
async fn writer_applies_backpressure_while_the_database_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db_url(dir.path());
    let store = Store::open(&url).await.expect("open");

    // A second connection holds the write lock: the writer's transaction waits on it.
    let mut blocker = AnyConnection::connect(&url).await.expect("blocker");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .expect("lock");

    let (handle, task) = spawn_writer(store.clone(), 4);
    // Fill: the writer takes the first record(s) and stalls, then the queue fills up and
    // a send stops completing.
    let sent = send_until_one_waits(&handle, "b", Duration::ZERO).await;
    assert_eq!(handle.queue_depth(), 4);

    let late = handle.clone();
    let late_id = format!("b-{sent:03}");
    let pending =
        tokio::spawn(async move { late.send(Record::Exposure(exposure(&late_id, "c-b"))).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !pending.is_finished(),
        "send completed while the queue was full"
    );
    assert_eq!(count(&store, "exposures").await, 0);

    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("unlock");
    timeout(Duration::from_secs(1), pending)
        .await
        .expect("send completes once space frees")
        .expect("join")
        .expect("send");

    drop(handle);
    assert_eq!(task.finish().await.expect("finish"), sent as u64 + 1);
    assert_eq!(count(&store, "exposures").await, sent + 1);
    blocker.close().await.expect("close blocker");
}

async fn send_after_the_writer_is_gone_is_closed(db: TestDb) {
    let store = db.store.clone();
    let (handle, task) = spawn_writer(store, 4);
    task.join.abort();
    let _ = task.join.await;
    let result = handle.send(Record::Exposure(exposure("x", "c-x"))).await;
    assert!(matches!(result, Err(StoreError::Closed)), "{result:?}");
}

#[tokio::test]
async fn unopenable_paths_and_bad_urls_name_the_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing_dir = format!(
        "sqlite://{}",
        dir.path().join("no-such-dir").join("x.db").display()
    );
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").expect("write file");
    let inside_file = format!("sqlite://{}", file.join("x.db").display());

    for url in [&missing_dir, &inside_file] {
        let err = Store::open(url).await.expect_err("must not open");
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains(url.as_str()), "{err}");
    }

    for url in ["mysql://localhost/db", "sqlite://", "cuedeck.db"] {
        let err = Store::open(url).await.expect_err("must not open");
        assert!(matches!(err, StoreError::BadUrl { .. }), "{err:?}");
        assert!(err.to_string().contains(url), "{err}");
    }
}

#[test]
fn the_spill_goes_next_to_the_sqlite_file_by_default() {
    let here = std::path::PathBuf::from("cuedeck-spill");
    assert_eq!(
        default_spill_dir("sqlite:///var/lib/cuedeck/cuedeck.db"),
        std::path::PathBuf::from("/var/lib/cuedeck/cuedeck-spill")
    );
    assert_eq!(default_spill_dir("sqlite://cuedeck.db"), here);
    assert_eq!(
        default_spill_dir("sqlite://data/c.db?mode=rwc"),
        Path::new("data").join(&here)
    );
    assert_eq!(default_spill_dir("sqlite://:memory:"), here);
    assert_eq!(default_spill_dir("postgres://u@h/db"), here);
}

#[test]
fn urls_are_prepared_and_redacted() {
    let (backend, url) = prepare_url("sqlite://cuedeck.db").expect("sqlite");
    assert_eq!(
        (backend, url.as_str()),
        (Backend::Sqlite, "sqlite://cuedeck.db?mode=rwc")
    );
    let (_, url) = prepare_url("sqlite://a.db?cache=shared").expect("params");
    assert_eq!(url, "sqlite://a.db?cache=shared&mode=rwc");
    let (_, url) = prepare_url("sqlite://a.db?mode=ro").expect("mode kept");
    assert_eq!(url, "sqlite://a.db?mode=ro");
    let (backend, _) = prepare_url("postgresql://u@h/db").expect("pg");
    assert_eq!(backend, Backend::Postgres);

    assert_eq!(
        redact("postgres://user:s3cret@db.example:5432/cue?sslmode=require"),
        "postgres://user:***@db.example:5432/cue?sslmode=require"
    );
    assert_eq!(redact("postgres://user@h/db"), "postgres://user@h/db");
    assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
}

async fn writer_retries_a_failed_batch_without_losing_it(db: TestDb) {
    let url = db.url.clone();
    let store = db.store.clone();
    // Break the schema from another connection: inserts fail until it is restored.
    let mut admin = AnyConnection::connect(&url).await.expect("admin");
    sqlx::query("ALTER TABLE exposures RENAME TO exposures_away")
        .execute(&mut admin)
        .await
        .expect("rename away");

    let (handle, task) = spawn_writer(store.clone(), 4);
    for i in 0..3 {
        handle
            .send(Record::Exposure(exposure(&format!("r-{i}"), "c-r")))
            .await
            .expect("send");
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let stats = handle.stats();
    assert_eq!(stats.written(), 0, "nothing can be written yet");

    sqlx::query("ALTER TABLE exposures_away RENAME TO exposures")
        .execute(&mut admin)
        .await
        .expect("rename back");
    drop(handle);
    assert_eq!(task.finish().await.expect("finish"), 3);
    assert_eq!(stats.written(), 3);
    assert_eq!(count(&store, "exposures").await, 3);
    admin.close().await.expect("close admin");
}

/// Sends an exposure per `(display_id, call_id)`, closes the queue and waits (10 s at
/// most) until the writer has handled them all.
async fn write_all(handle: StoreHandle, task: WriterTask, ids: &[(&str, &str)]) {
    for (display_id, call_id) in ids {
        handle
            .send(Record::Exposure(exposure(display_id, call_id)))
            .await
            .expect("send");
    }
    drop(handle);
    timeout(Duration::from_secs(10), task.finish())
        .await
        .expect("the writer moved past every record")
        .expect("finish");
}

impl TestDb {
    fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }

    /// Makes the database reject, for good, every exposure of the call `poison`: a trigger
    /// on SQLite (a constraint error); on PostgreSQL the call id carries a NUL byte, which
    /// its text type cannot hold (an encoding error). Returns the call id to use.
    async fn reject_call_for_good(&self) -> &'static str {
        if self.is_postgres() {
            return "poi\0son";
        }
        let mut admin = AnyConnection::connect(&self.url).await.expect("admin");
        sqlx::query(
            "CREATE TRIGGER reject_poison BEFORE INSERT ON exposures \
             WHEN NEW.call_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END",
        )
        .execute(&mut admin)
        .await
        .expect("create trigger");
        admin.close().await.expect("close admin");
        "poison"
    }
}

async fn a_record_the_database_rejects_is_dead_lettered_and_the_queue_moves_on(db: TestDb) {
    let store = db.store.clone();
    let poison = db.reject_call_for_good().await;
    let (handle, task) = spawn_writer(store.clone(), 16);
    let stats = handle.stats();
    let ids = [("ok-1", "c-ok"), ("bad-1", poison), ("ok-2", "c-ok")];
    write_all(handle, task, &ids).await;
    assert_eq!(count(&store, "exposures").await, 2);
    assert_eq!(stats.dead_letters(), 1);
    assert!(!stats.failing(), "a rejection is not an outage");
    let letters = store.dead_letters().await.expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let record: Record = serde_json::from_str(&letters[0].record).expect("record JSON");
    assert_eq!(record, Record::Exposure(exposure("bad-1", poison)));
    assert!(!letters[0].error.is_empty());
}

/// A connection holding SQLite's write lock: the writer's transactions wait on it.
async fn lock_sqlite(url: &str) -> AnyConnection {
    let mut blocker = AnyConnection::connect(url).await.expect("blocker");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .expect("lock");
    blocker
}

async fn unlock_sqlite(mut blocker: AnyConnection) {
    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("unlock");
    blocker.close().await.expect("close blocker");
}

fn spill_in(dir: &Path, max_bytes: u64) -> SpillOptions {
    SpillOptions {
        dir: dir.join("spill"),
        max_bytes,
    }
}

fn spill_files(options: &SpillOptions) -> Vec<String> {
    std::fs::read_dir(&options.dir)
        .expect("spill dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn a_full_queue_spills_to_disk_and_sends_do_not_wait() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = lock_sqlite(&db.url).await;
    let spill = spill_in(dir.path(), 1 << 20);
    let (handle, task) = spawn_writer_with_spill(db.store.clone(), 4, &spill).expect("writer");
    let stats = handle.stats();
    for i in 0..200 {
        let record = Record::Exposure(exposure(&format!("s-{i:03}"), "c-s"));
        timeout(Duration::from_millis(200), handle.send(record))
            .await
            .expect("a send does not wait while the spill has room")
            .expect("send");
    }
    assert_eq!(handle.queue_depth(), 4);
    assert!(stats.spilled() >= 190, "{}", stats.spilled());
    assert!(stats.spill_bytes() > 0);
    assert_eq!(count(&db.store, "exposures").await, 0);

    unlock_sqlite(blocker).await;
    drop(handle);
    assert_eq!(task.finish().await.expect("finish"), 200);
    assert_eq!(count(&db.store, "distinct_exposures").await, 200);
    assert_eq!(stats.spill_bytes(), 0);
    assert!(spill_files(&spill).is_empty(), "{:?}", spill_files(&spill));
}

#[tokio::test]
async fn the_spill_survives_a_restart_and_is_written_first() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spill = spill_in(dir.path(), 1 << 20);
    let call = |deal: &str| {
        Record::CallStarted(CallRow {
            call_id: "c-r".to_string(),
            deal_id: Some(deal.to_string()),
            rep_id: None,
            context: "{}".to_string(),
            started_at: t("2026-11-23T10:00:00.000Z"),
        })
    };
    let blocker = lock_sqlite(&db.url).await;
    let (handle, task) = spawn_writer_with_spill(db.store.clone(), 1, &spill).expect("writer");
    let stats = handle.stats();
    // The writer takes one record and waits on the lock, one fills the queue …
    for i in 0..2 {
        let record = Record::Exposure(exposure(&format!("mem-{i}"), "c-m"));
        handle.send(record).await.expect("send");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // … and a whole call goes to the spill.
    handle.send(call("d-old")).await.expect("send");
    for i in 0..8 {
        let record = Record::Exposure(exposure(&format!("disk-{i}"), "c-r"));
        handle.send(record).await.expect("send");
    }
    handle
        .send(Record::CallEnded {
            call_id: "c-r".to_string(),
            ended_at: t("2026-11-23T10:05:00.000Z"),
        })
        .await
        .expect("send");
    assert_eq!(stats.spilled(), 10);

    // The process dies: the writer is gone mid-transaction, the spill stays on disk.
    task.join.abort();
    let _ = task.join.await;
    drop(handle);
    unlock_sqlite(blocker).await;

    let store = Store::open(&db.url).await.expect("reopen");
    let (handle, task) = spawn_writer_with_spill(store.clone(), 1, &spill).expect("restart");
    assert!(handle.stats().spill_bytes() > 0);
    // The call reconnects on the new process: it must land after the spilled end.
    handle.send(call("d-new")).await.expect("send");
    drop(handle);
    assert_eq!(task.finish().await.expect("finish"), 11);

    let rows = store.exposures(Some("c-r")).await.expect("read");
    assert_eq!(rows.len(), 8);
    let (row, ended_at) = store.call("c-r").await.expect("read").expect("the call");
    assert_eq!(row.deal_id.as_deref(), Some("d-new"));
    assert_eq!(
        ended_at, None,
        "the spilled end was written before the reconnect"
    );
    assert!(spill_files(&spill).is_empty(), "{:?}", spill_files(&spill));
}

#[tokio::test]
async fn when_the_queue_and_the_spill_are_full_a_send_waits() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = lock_sqlite(&db.url).await;
    // Room for one record in the spill (a record always fits in an empty spill).
    let spill = spill_in(dir.path(), 1);
    let (handle, task) = spawn_writer_with_spill(db.store.clone(), 1, &spill).expect("writer");
    // The writer is given time to take each record.
    let sent = send_until_one_waits(&handle, "w", Duration::from_millis(20)).await;
    // One in the writer's hands, one queued, one spilled.
    assert_eq!(sent, 3);
    let late = handle.clone();
    let pending =
        tokio::spawn(async move { late.send(Record::Exposure(exposure("w-late", "c-w"))).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!pending.is_finished(), "a send completed with both full");

    unlock_sqlite(blocker).await;
    timeout(Duration::from_secs(5), pending)
        .await
        .expect("the send completes once there is room")
        .expect("join")
        .expect("send");
    drop(handle);
    assert_eq!(task.finish().await.expect("finish"), 4);
    assert_eq!(count(&db.store, "exposures").await, 4);
}

#[tokio::test]
async fn a_dead_letter_the_database_refuses_goes_to_a_file() {
    let db = TestDb::sqlite().await;
    let poison = db.reject_call_for_good().await;
    let mut admin = AnyConnection::connect(&db.url).await.expect("admin");
    sqlx::query("DROP TABLE dead_letters")
        .execute(&mut admin)
        .await
        .expect("drop");
    admin.close().await.expect("close admin");
    let dir = tempfile::tempdir().expect("tempdir");
    let spill = spill_in(dir.path(), 1 << 20);
    let (handle, task) = spawn_writer_with_spill(db.store.clone(), 4, &spill).expect("writer");
    let stats = handle.stats();
    write_all(handle, task, &[("bad-1", poison), ("ok-1", "c-ok")]).await;
    assert_eq!(stats.dead_letters(), 1);
    assert_eq!(count(&db.store, "exposures").await, 1);
    let text = std::fs::read_to_string(spill.dir.join("dead-letters.jsonl")).expect("file");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let record: Record =
        serde_json::from_str(lines[0]["record"].as_str().expect("record")).expect("record JSON");
    assert_eq!(record, Record::Exposure(exposure("bad-1", poison)));
    assert!(
        lines[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("poison refused"))
    );
}
