//! `levelset data fetch` against a real HTTP server on the loopback address, started by each
//! test and serving files packed like the official ones: good files, a corrupted byte, a
//! truncated response, a 404 before a good mirror, a connection closed mid-file, a tar.gz whose
//! members are unpacked. Every failure must leave nothing behind that a loader could read.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use levelset_data::atomic::temp_beside;
use levelset_data::catalog::{Digest, Install, RemoteFile, Source};
use levelset_data::fetch::{
    FetchOptions, FileOutcome, Unpacked, fetch_sources, sha256_file, unpacked_intact,
    unpacked_state,
};
use sha2::{Digest as _, Sha256};

/// What the server does for one path.
#[derive(Clone)]
enum Reply {
    Body(Vec<u8>),
    /// Announces the full length, sends the first `sent` bytes, closes.
    Truncated {
        body: Vec<u8>,
        sent: usize,
    },
    /// Sends the first `sent` bytes without announcing a length, then closes.
    ClosedMidFile {
        body: Vec<u8>,
        sent: usize,
    },
    /// Sends `body`, then zeros up to `total` bytes in all, without announcing a length: a
    /// mirror that streams far more than the file (cut at `total` so that a client that reads
    /// it all still ends).
    Overlong {
        body: Vec<u8>,
        total: u64,
    },
    NotFound,
}

/// A one-thread HTTP/1.1 server; its base URL, the number of requests it answered, the number
/// of replies it finished (sent whole or cut off by the client) and the body bytes it sent.
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    sent: Arc<AtomicU64>,
}

impl Server {
    /// Waits until `n` replies are finished, so that `sent` is final.
    fn wait_for_replies(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.finished.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "the server never finished");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Writes `body` then zeros to `stream` up to `total` bytes, adding what it sent to `sent`;
/// stops at the first failed write (the client has gone).
fn write_overlong(stream: &mut impl Write, body: &[u8], total: u64, sent: &AtomicU64) {
    let zeros = vec![0u8; 1 << 16];
    let mut left = total;
    let mut chunks = body
        .chunks(1 << 16)
        .chain(std::iter::repeat(zeros.as_slice()));
    while left > 0 {
        let chunk = chunks.next().expect("endless");
        let chunk = &chunk[..chunk.len().min(left as usize)];
        if stream.write_all(chunk).is_err() {
            return;
        }
        sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        left -= chunk.len() as u64;
    }
}

fn serve(routes: HashMap<String, Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let finished = Arc::new(AtomicUsize::new(0));
    let done = finished.clone();
    let sent = Arc::new(AtomicU64::new(0));
    let sent_total = sent.clone();
    let routes = Arc::new(Mutex::new(routes));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Read the headers up to the blank line.
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            count.fetch_add(1, Ordering::SeqCst);
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            let reply = routes
                .lock()
                .unwrap()
                .get(&path)
                .cloned()
                .unwrap_or(Reply::NotFound);
            let _ = match reply {
                Reply::Body(body) => write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .and_then(|()| stream.write_all(&body)),
                Reply::Truncated { body, sent } => write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .and_then(|()| stream.write_all(&body[..sent])),
                Reply::ClosedMidFile { body, sent } => {
                    write!(stream, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                        .and_then(|()| stream.write_all(&body[..sent]))
                }
                Reply::Overlong { body, total } => {
                    write!(stream, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").map(|()| {
                        write_overlong(&mut stream, &body, total, &sent_total);
                    })
                }
                Reply::NotFound => write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
            };
            let _ = stream.flush();
            drop(stream);
            done.fetch_add(1, Ordering::SeqCst);
        }
    });
    Server {
        base,
        requests,
        finished,
        sent,
    }
}

fn sha256(bytes: &[u8]) -> &'static str {
    Box::leak(format!("{:x}", Sha256::digest(bytes)).into_boxed_str())
}

/// Bytes that look like a gzipped IDX file (content does not matter to fetching).
fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn source(name: &'static str, bytes: &[u8]) -> Source {
    Source {
        file: RemoteFile {
            name,
            digest: Digest::Sha256(sha256(bytes)),
            size: bytes.len() as u64,
            mirrors: &[],
        },
        install: Install::AsIs,
    }
}

fn options(mirrors: &[&Server]) -> FetchOptions {
    FetchOptions {
        mirrors: mirrors.iter().map(|s| s.base.clone()).collect(),
        only_mirrors: false,
        progress: false,
    }
}

/// Every entry of `dir`, hidden temporary files included.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn good_files_land_verified_and_are_not_downloaded_again() {
    let (a, b) = (payload(1, 70_000), payload(2, 1_234));
    let server = serve(HashMap::from([
        ("a.gz".into(), Reply::Body(a.clone())),
        ("b.gz".into(), Reply::Body(b.clone())),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let sources = [source("a.gz", &a), source("b.gz", &b)];
    let outcomes = fetch_sources(&sources, dir.path(), &options(&[&server])).unwrap();
    for (name, outcome) in &outcomes {
        assert_eq!(
            outcome,
            &FileOutcome::Downloaded {
                url: format!("{}{name}", server.base)
            }
        );
    }
    assert_eq!(std::fs::read(dir.path().join("a.gz")).unwrap(), a);
    assert_eq!(std::fs::read(dir.path().join("b.gz")).unwrap(), b);
    assert_eq!(
        entries(dir.path()),
        ["a.gz", "b.gz"],
        "no temporary file left"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);

    let again = fetch_sources(&sources, dir.path(), &options(&[&server])).unwrap();
    assert!(again.iter().all(|(_, o)| *o == FileOutcome::Present));
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        2,
        "nothing fetched twice"
    );
}

#[test]
fn a_corrupted_byte_is_refused_naming_the_file_and_both_hashes() {
    let good = payload(3, 50_000);
    let mut bad = good.clone();
    bad[12_345] ^= 0x40;
    let server = serve(HashMap::from([("t.gz".into(), Reply::Body(bad.clone()))]));
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_sources(&[source("t.gz", &good)], dir.path(), &options(&[&server]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("t.gz"), "{err}");
    assert!(err.contains(sha256(&good)), "expected hash in: {err}");
    assert!(err.contains(sha256(&bad)), "found hash in: {err}");
    assert!(
        entries(dir.path()).is_empty(),
        "left behind: {:?}",
        entries(dir.path())
    );
}

#[test]
fn a_wrong_file_already_present_is_replaced() {
    let good = payload(4, 3_000);
    let server = serve(HashMap::from([("p.gz".into(), Reply::Body(good.clone()))]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.gz"), b"stale").unwrap();
    let outcomes =
        fetch_sources(&[source("p.gz", &good)], dir.path(), &options(&[&server])).unwrap();
    assert!(matches!(outcomes[0].1, FileOutcome::Downloaded { .. }));
    assert_eq!(std::fs::read(dir.path().join("p.gz")).unwrap(), good);
}

#[test]
fn truncated_and_interrupted_responses_leave_nothing_behind() {
    let body = payload(5, 200_000);
    let server = serve(HashMap::from([
        (
            "truncated.gz".into(),
            Reply::Truncated {
                body: body.clone(),
                sent: 90_000,
            },
        ),
        (
            "closed.gz".into(),
            Reply::ClosedMidFile {
                body: body.clone(),
                sent: 120_000,
            },
        ),
    ]));
    for name in ["truncated.gz", "closed.gz"] {
        let dir = tempfile::tempdir().unwrap();
        let err = fetch_sources(&[source(name, &body)], dir.path(), &options(&[&server]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(name), "{err}");
        assert!(
            entries(dir.path()).is_empty(),
            "{name} left {:?}",
            entries(dir.path())
        );
    }
}

#[test]
fn a_404_on_the_first_mirror_falls_back_to_the_second() {
    let body = payload(6, 10_000);
    let empty = serve(HashMap::new());
    let good = serve(HashMap::from([("m.gz".into(), Reply::Body(body.clone()))]));
    let dir = tempfile::tempdir().unwrap();
    let outcomes = fetch_sources(
        &[source("m.gz", &body)],
        dir.path(),
        &options(&[&empty, &good]),
    )
    .unwrap();
    assert_eq!(
        outcomes[0].1,
        FileOutcome::Downloaded {
            url: format!("{}m.gz", good.base)
        }
    );
    assert_eq!(empty.requests.load(Ordering::SeqCst), 1);
    assert_eq!(std::fs::read(dir.path().join("m.gz")).unwrap(), body);
}

#[test]
fn every_mirror_failing_lists_each_failure() {
    let body = payload(7, 1_000);
    let empty = serve(HashMap::new());
    // A port nothing listens on: bind, note the port, close.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = FetchOptions {
        mirrors: vec![empty.base.clone(), closed.clone()],
        only_mirrors: false,
        progress: false,
    };
    let err = fetch_sources(&[source("x.gz", &body)], dir.path(), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("x.gz") && err.contains("404"), "{err}");
    assert!(err.contains(&closed), "{err}");
    assert!(entries(dir.path()).is_empty());
}

/// A gzipped tar holding `members` (path, bytes).
fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

const MEMBERS: &[&str] = &["batches/data_batch_1.bin", "batches/batches.meta.txt"];

fn archive_source(archive: &[u8]) -> Source {
    Source {
        install: Install::Unpack { members: MEMBERS },
        ..source("set.tar.gz", archive)
    }
}

#[test]
fn an_archive_is_unpacked_member_by_member_and_recognised_later() {
    let batch = payload(8, 30_730);
    let archive = tar_gz(&[
        ("batches/readme.html", b"<html>"),
        (MEMBERS[0], &batch),
        (MEMBERS[1], b"airplane\nautomobile\n"),
    ]);
    let server = serve(HashMap::from([(
        "set.tar.gz".into(),
        Reply::Body(archive.clone()),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let src = [archive_source(&archive)];
    fetch_sources(&src, dir.path(), &options(&[&server])).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("data_batch_1.bin")).unwrap(),
        batch
    );
    assert_eq!(
        entries(dir.path()),
        [".set.tar.gz.sha256", "batches.meta.txt", "data_batch_1.bin"],
        "members and their manifest only: no archive, no readme, no temporary file"
    );
    let manifest = std::fs::read_to_string(dir.path().join(".set.tar.gz.sha256")).unwrap();
    assert!(manifest.contains(&sha256_file(&dir.path().join("data_batch_1.bin")).unwrap()));

    let again = fetch_sources(&src, dir.path(), &options(&[&server])).unwrap();
    assert_eq!(again[0].1, FileOutcome::Present);
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);

    // A damaged member is noticed and the archive fetched again.
    std::fs::write(dir.path().join("data_batch_1.bin"), b"damaged").unwrap();
    let repaired = fetch_sources(&src, dir.path(), &options(&[&server])).unwrap();
    assert!(matches!(repaired[0].1, FileOutcome::Downloaded { .. }));
    assert_eq!(
        std::fs::read(dir.path().join("data_batch_1.bin")).unwrap(),
        batch
    );
}

#[test]
fn an_archive_lacking_a_member_installs_nothing() {
    let archive = tar_gz(&[(MEMBERS[0], b"only one")]);
    let server = serve(HashMap::from([(
        "set.tar.gz".into(),
        Reply::Body(archive.clone()),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_sources(
        &[archive_source(&archive)],
        dir.path(),
        &options(&[&server]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("lacks") && err.contains(MEMBERS[1]), "{err}");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

/// A file outside the data folder, and a link to it planted at `link`; the file's content.
#[cfg(unix)]
fn plant_link(outside: &Path, link: &Path) -> Vec<u8> {
    let victim = outside.join("victim");
    let content = b"a file of the user's, outside the data folder".to_vec();
    std::fs::write(&victim, &content).unwrap();
    std::os::unix::fs::symlink(&victim, link).unwrap();
    content
}

/// Links planted at the temporary paths of a download, of an unpacked member and of the
/// manifest are replaced, never followed: the files they point at, outside the data folder,
/// keep their content, and the installed files are the right ones.
#[cfg(unix)]
#[test]
fn links_at_temporary_paths_are_not_followed() {
    let body = payload(9, 5_000);
    let batch = payload(10, 3_073);
    let archive = tar_gz(&[(MEMBERS[0], &batch), (MEMBERS[1], b"airplane\n")]);
    let server = serve(HashMap::from([
        ("a.gz".into(), Reply::Body(body.clone())),
        ("set.tar.gz".into(), Reply::Body(archive.clone())),
    ]));
    for installed in [
        "a.gz",
        "set.tar.gz",
        "data_batch_1.bin",
        ".set.tar.gz.sha256",
    ] {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let temp = temp_beside(&dir.path().join(installed));
        let victim = plant_link(outside.path(), &temp);
        fetch_sources(
            &[source("a.gz", &body), archive_source(&archive)],
            dir.path(),
            &options(&[&server]),
        )
        .unwrap();
        assert!(
            std::fs::read(outside.path().join("victim")).unwrap() == victim,
            "written through a link at {}",
            temp.display()
        );
        assert!(std::fs::read(dir.path().join("a.gz")).unwrap() == body);
        assert!(std::fs::read(dir.path().join("data_batch_1.bin")).unwrap() == batch);
        assert_eq!(
            entries(dir.path()),
            [
                ".set.tar.gz.sha256",
                "a.gz",
                "batches.meta.txt",
                "data_batch_1.bin"
            ],
            "link at {} left behind",
            temp.display()
        );
    }
}

/// A mirror that streams without end (here 64 MiB for a 1,000-byte file) is cut off just past
/// the pinned size, with an error naming the URL, the file and that size; the rest is never
/// read (the server manages to send only what the sockets buffer), so the disk never fills.
#[test]
fn a_mirror_streaming_past_the_pinned_size_is_cut_off() {
    let body = payload(11, 1_000);
    let total = 64 << 20;
    let server = serve(HashMap::from([(
        "big.gz".into(),
        Reply::Overlong {
            body: body.clone(),
            total,
        },
    )]));
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_sources(&[source("big.gz", &body)], dir.path(), &options(&[&server]))
        .unwrap_err()
        .to_string();
    let url = format!("{}big.gz", server.base);
    assert!(
        err.contains(&url) && err.contains("more than the 1000 bytes pinned for big.gz"),
        "{err}"
    );
    assert!(
        !err.contains("checksum"),
        "stopped before the checksum: {err}"
    );
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    server.wait_for_replies(1);
    let sent = server.sent.load(Ordering::SeqCst);
    assert!(sent < total / 2, "the client read on: {sent} bytes sent");
}

/// A length announced otherwise than the pinned size is refused before the body is read.
#[test]
fn an_announced_length_other_than_the_pinned_size_is_refused() {
    let body = payload(12, 1_000);
    let longer = [body.as_slice(), &payload(13, 5_000)].concat();
    let server = serve(HashMap::from([("c.gz".into(), Reply::Body(longer))]));
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_sources(&[source("c.gz", &body)], dir.path(), &options(&[&server]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{}c.gz", server.base))
            && err.contains("announces 6000 bytes")
            && err.contains("pinned at 1000 bytes"),
        "{err}"
    );
    assert!(entries(dir.path()).is_empty());
}

/// A file shorter than its pinned size is a size mismatch, reported as such rather than as a
/// checksum mismatch.
#[test]
fn a_short_file_is_a_size_mismatch() {
    let body = payload(14, 20_000);
    let server = serve(HashMap::from([(
        "s.gz".into(),
        Reply::ClosedMidFile {
            body: body.clone(),
            sent: 12_000,
        },
    )]));
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_sources(&[source("s.gz", &body)], dir.path(), &options(&[&server]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("size mismatch")
            && err.contains("12000")
            && err.contains("20000 bytes pinned for s.gz"),
        "{err}"
    );
    assert!(!err.contains("checksum"), "{err}");
    assert!(entries(dir.path()).is_empty());
}

/// A huge file under a data file's name (here a sparse 1 TiB one) is recognised as the wrong
/// file by its size and replaced, without being read through to hash it.
#[test]
fn a_huge_file_under_the_name_is_replaced_without_being_read() {
    let body = payload(15, 2_000);
    let server = serve(HashMap::from([("h.gz".into(), Reply::Body(body.clone()))]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::File::create(dir.path().join("h.gz"))
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let start = Instant::now();
    let outcomes =
        fetch_sources(&[source("h.gz", &body)], dir.path(), &options(&[&server])).unwrap();
    assert!(matches!(outcomes[0].1, FileOutcome::Downloaded { .. }));
    assert!(std::fs::read(dir.path().join("h.gz")).unwrap() == body);
    // Hashing 1 TiB takes many minutes; comparing sizes takes nothing.
    let took = start.elapsed();
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// An archive fetched into a fresh folder: the server (still serving it), the folder and the
/// catalog entry.
fn installed_archive() -> (Server, tempfile::TempDir, Source) {
    let batch = payload(16, 3_073);
    let archive = tar_gz(&[(MEMBERS[0], &batch), (MEMBERS[1], b"airplane\n")]);
    let server = serve(HashMap::from([(
        "set.tar.gz".into(),
        Reply::Body(archive.clone()),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let src = archive_source(&archive);
    fetch_sources(&[src], dir.path(), &options(&[&server])).unwrap();
    assert_eq!(unpacked_state(&src, dir.path()).unwrap(), Unpacked::Intact);
    (server, dir, src)
}

/// Why `dir`'s installation of `src` is not intact; panics when it is.
fn not_intact(src: &Source, dir: &Path) -> String {
    assert!(!unpacked_intact(src, dir).unwrap());
    match unpacked_state(src, dir).unwrap() {
        Unpacked::Intact => panic!("reported intact"),
        Unpacked::NotIntact(why) => why,
    }
}

/// A manifest with its header line only (no member listed, no member present) is not an intact
/// installation: the first member it lacks is named, and a fetch downloads the archive again
/// instead of reporting it present.
#[test]
fn a_manifest_listing_no_member_is_not_intact() {
    let (server, dir, src) = installed_archive();
    let manifest = dir.path().join(".set.tar.gz.sha256");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let header = text.lines().next().unwrap();
    for name in ["data_batch_1.bin", "batches.meta.txt"] {
        std::fs::remove_file(dir.path().join(name)).unwrap();
    }
    std::fs::write(&manifest, format!("{header}\n")).unwrap();

    let why = not_intact(&src, dir.path());
    assert!(why.contains("does not list data_batch_1.bin"), "{why}");
    let outcomes = fetch_sources(&[src], dir.path(), &options(&[&server])).unwrap();
    assert!(matches!(outcomes[0].1, FileOutcome::Downloaded { .. }));
    assert_eq!(unpacked_state(&src, dir.path()).unwrap(), Unpacked::Intact);
}

/// Every member the catalog lists must be listed, present and unchanged; the manifest may list
/// nothing else (a name outside the catalog, such as a path out of the folder, is never
/// hashed) and no member twice. Each problem names the member or line concerned.
#[test]
fn each_member_must_be_listed_present_and_intact() {
    let (_server, dir, src) = installed_archive();
    let manifest = dir.path().join(".set.tar.gz.sha256");
    let good = std::fs::read_to_string(&manifest).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let outside = tempfile::tempdir().unwrap();
    let stranger = outside.path().join("stranger");
    std::fs::write(&stranger, b"not a member").unwrap();
    let stranger_line = format!("{}  {}", sha256(b"not a member"), stranger.display());
    for (text, expected) in [
        (
            format!("{}\n{}\n", lines[0], lines[2]),
            "does not list data_batch_1.bin".to_string(),
        ),
        (
            format!("{good}{stranger_line}\n"),
            format!("lists {}, which is not a member", stranger.display()),
        ),
        (
            format!("{good}{}\n", lines[1]),
            "lists data_batch_1.bin twice".to_string(),
        ),
        (
            format!("{good}no hash here\n"),
            "unreadable line".to_string(),
        ),
        (
            good.replacen(&lines[0][2..8], "xxxxxx", 1),
            "records another archive".to_string(),
        ),
    ] {
        std::fs::write(&manifest, &text).unwrap();
        let why = not_intact(&src, dir.path());
        assert!(why.contains(&expected), "{text:?}: {why}");
    }

    std::fs::write(&manifest, &good).unwrap();
    std::fs::remove_file(dir.path().join("batches.meta.txt")).unwrap();
    let why = not_intact(&src, dir.path());
    assert!(
        why.contains("batches.meta.txt") && why.contains("missing"),
        "{why}"
    );
    std::fs::write(dir.path().join("batches.meta.txt"), b"airplane\nbird\n").unwrap();
    let why = not_intact(&src, dir.path());
    assert!(
        why.contains("batches.meta.txt") && why.contains("differs"),
        "{why}"
    );
}

/// A manifest far longer than any manifest (here a sparse 1 TiB file) is refused by its size,
/// not read into memory.
#[test]
fn a_huge_manifest_is_not_read() {
    let (_server, dir, src) = installed_archive();
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join(".set.tar.gz.sha256"))
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let why = not_intact(&src, dir.path());
    assert!(why.contains("longer than a manifest"), "{why}");
}

/// A tar.gz built entry by entry: (path, entry type, link target, bytes).
fn tar_gz_entries(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, kind, link, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        if !link.is_empty() {
            header.set_link_name(link).unwrap();
        }
        header.set_cksum();
        tar.append_data(&mut header, path, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// A member that is a symbolic or hard link, or a member the archive holds twice, is refused
/// by name and nothing is installed: the catalog's members are regular files, once each.
#[test]
fn links_and_duplicates_among_members_are_refused() {
    use tar::EntryType::{Link, Regular, Symlink};
    let meta: &[u8] = b"airplane\n";
    for (members, expected) in [
        (
            vec![
                (MEMBERS[0], Symlink, "/etc/passwd", &[][..]),
                (MEMBERS[1], Regular, "", meta),
            ],
            format!("{} is a symbolic link, not a regular file", MEMBERS[0]),
        ),
        (
            vec![
                (MEMBERS[1], Regular, "", meta),
                (MEMBERS[0], Link, MEMBERS[1], &[][..]),
            ],
            format!("{} is a hard link, not a regular file", MEMBERS[0]),
        ),
        (
            vec![
                (MEMBERS[0], Regular, "", &b"first"[..]),
                (MEMBERS[1], Regular, "", meta),
                (MEMBERS[0], Regular, "", &b"second"[..]),
            ],
            format!("holds {} twice", MEMBERS[0]),
        ),
    ] {
        let archive = tar_gz_entries(&members);
        let server = serve(HashMap::from([(
            "set.tar.gz".into(),
            Reply::Body(archive.clone()),
        )]));
        let dir = tempfile::tempdir().unwrap();
        let err = fetch_sources(
            &[archive_source(&archive)],
            dir.path(),
            &options(&[&server]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&expected) && err.contains("set.tar.gz"),
            "{err}"
        );
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    }
}
