//! `levelset data fetch`: downloads a data set's official files into the data directory.
//!
//! Each file is streamed to a temporary file beside its destination while it is hashed, read no
//! further than one byte past the size pinned in [`crate::catalog`], checked against that size
//! and the pinned checksum, and only then renamed into place (or unpacked, each member again
//! through a temporary file). A failed or interrupted download therefore never leaves a file
//! under a name a loader reads. Mirrors are tried in order; a user's own mirrors (`--mirror`)
//! come first.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest as _, Sha256};

use crate::atomic::{create_new, sync_parent, temp_beside, write_atomic};
use crate::catalog::{Dataset, Digest, Install, RemoteFile, Source, base_name};

/// Why a data set could not be fetched. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{name}: every mirror failed:\n{}", list(.attempts))]
    AllMirrorsFailed { name: String, attempts: Vec<String> },

    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{archive}: {problem}", archive = .archive.display())]
    Archive { archive: PathBuf, problem: String },
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|a| format!("  - {a}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How to fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Base URLs tried before the catalog's own mirrors, in order.
    pub mirrors: Vec<String>,
    /// Try only `mirrors`, not the catalog's.
    pub only_mirrors: bool,
    /// Show a progress bar per file (on a terminal).
    pub progress: bool,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Already present with the right checksum: not downloaded.
    Present,
    /// Downloaded from this URL and verified.
    Downloaded { url: String },
}

/// Fetches `dataset` into `data_dir/<name>/`; the outcome per published file.
pub fn fetch(
    dataset: Dataset,
    data_dir: &Path,
    options: &FetchOptions,
) -> Result<Vec<(&'static str, FileOutcome)>, FetchError> {
    fetch_sources(dataset.sources(), &data_dir.join(dataset.name()), options)
}

/// Fetches each of `sources` into `dir` (created if needed); the outcome per source.
pub fn fetch_sources(
    sources: &[Source],
    dir: &Path,
    options: &FetchOptions,
) -> Result<Vec<(&'static str, FileOutcome)>, FetchError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    sources
        .iter()
        .map(|source| Ok((source.file.name, fetch_source(source, dir, options)?)))
        .collect()
}

fn fetch_source(
    source: &Source,
    dir: &Path,
    options: &FetchOptions,
) -> Result<FileOutcome, FetchError> {
    match source.install {
        Install::AsIs => {
            let dest = dir.join(source.file.name);
            if holds_pinned(&dest, &source.file)? {
                return Ok(FileOutcome::Present);
            }
            let (temp, url) = download(&source.file, dir, options)?;
            std::fs::rename(&temp, &dest).map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                io_error(&dest)(e)
            })?;
            sync_parent(&dest).map_err(io_error(dir))?;
            Ok(FileOutcome::Downloaded { url })
        }
        Install::Unpack { members } => {
            if unpacked_intact(source, dir)? {
                return Ok(FileOutcome::Present);
            }
            let (temp, url) = download(&source.file, dir, options)?;
            let result =
                unpack(&temp, members, dir).and_then(|hashes| write_manifest(source, dir, &hashes));
            let _ = std::fs::remove_file(&temp);
            result.map(|()| FileOutcome::Downloaded { url })
        }
    }
}

/// Whether `path` is a file of `file`'s pinned size and checksum. The size is compared first,
/// so that a huge file under the name is not read through to find it is the wrong one.
fn holds_pinned(path: &Path, file: &RemoteFile) -> Result<bool, FetchError> {
    let pinned_size = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == file.size);
    Ok(pinned_size && file_digest(path, file.digest)? == file.digest.hex())
}

/// Downloads `file` from the first mirror that serves it with the pinned size and checksum,
/// into a temporary file in `dir`; that file's path and the URL.
fn download(
    file: &RemoteFile,
    dir: &Path,
    options: &FetchOptions,
) -> Result<(PathBuf, String), FetchError> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(20))
        .timeout_read(Duration::from_secs(60))
        .build();
    let mut attempts = Vec::new();
    let mirrors = options.mirrors.iter().map(String::as_str).chain(
        file.mirrors
            .iter()
            .copied()
            .filter(|_| !options.only_mirrors),
    );
    for mirror in mirrors {
        let url = join_url(mirror, file.name);
        let temp = temp_beside(&dir.join(file.name));
        match download_one(&agent, &url, &temp, file, options.progress) {
            Ok(()) => return Ok((temp, url)),
            Err(problem) => {
                let _ = std::fs::remove_file(&temp);
                attempts.push(format!("{url}: {problem}"));
            }
        }
    }
    Err(FetchError::AllMirrorsFailed {
        name: file.name.into(),
        attempts,
    })
}

fn join_url(mirror: &str, name: &str) -> String {
    if mirror.ends_with('/') {
        format!("{mirror}{name}")
    } else {
        format!("{mirror}/{name}")
    }
}

/// One mirror's try: streams the body to `temp` while hashing it; a description of what went
/// wrong otherwise.
fn download_one(
    agent: &ureq::Agent,
    url: &str,
    temp: &Path,
    file: &RemoteFile,
    progress: bool,
) -> Result<(), String> {
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, _) => format!("HTTP status {code}"),
        ureq::Error::Transport(t) => match t.message() {
            Some(message) => format!("cannot connect ({}): {message}", t.kind()),
            None => format!("cannot connect ({})", t.kind()),
        },
    })?;
    // The pinned size bounds what is read: a length announced otherwise is refused before the
    // body, and the body is read to one byte past the pinned size at most, so that a mirror
    // streaming without end is cut off there instead of filling the disk.
    let pinned = file.size;
    if let Some(announced) = response.header("Content-Length")
        && announced.trim().parse::<u64>().ok() != Some(pinned)
    {
        return Err(format!(
            "announces {announced} bytes, but {} is pinned at {pinned} bytes",
            file.name
        ));
    }
    let bar = progress_bar(progress, file.name, pinned);
    let mut reader = bar.wrap_read(response.into_reader().take(pinned + 1));
    let mut out = create_new(temp).map_err(|e| format!("cannot create {}: {e}", temp.display()))?;
    let mut hasher = Sha256::new();
    let received = copy_hashed(&mut reader, &mut out, &mut hasher).map_err(|e| match e {
        CopyError::Read { after, source } => {
            format!("download broke off after {after} bytes: {source}")
        }
        CopyError::Write(e) => format!("writing {}: {e}", temp.display()),
    })?;
    bar.finish_and_clear();
    if received > pinned {
        return Err(format!(
            "serves more than the {pinned} bytes pinned for {}; stopped reading there",
            file.name
        ));
    }
    if received < pinned {
        return Err(format!(
            "size mismatch: received {received} of the {pinned} bytes pinned for {}",
            file.name
        ));
    }
    out.sync_all()
        .map_err(|e| format!("writing {}: {e}", temp.display()))?;
    let found = hex(hasher);
    if found != file.digest.hex() {
        return Err(format!(
            "checksum mismatch for {}: expected {} {}, found {found}",
            file.name,
            file.digest.algorithm(),
            file.digest.hex()
        ));
    }
    Ok(())
}

fn progress_bar(show: bool, name: &str, len: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:28} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("a valid template"),
    );
    bar.set_message(name.to_string());
    bar
}

/// Why [`copy_hashed`] stopped: reading the source (after this many bytes) or writing.
enum CopyError {
    Read { after: u64, source: io::Error },
    Write(io::Error),
}

/// Copies `reader` to `out` while feeding every byte to `hasher`; the bytes copied.
fn copy_hashed(
    reader: &mut impl Read,
    out: &mut impl Write,
    hasher: &mut Sha256,
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 1 << 16];
    let mut copied: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(CopyError::Read {
                    after: copied,
                    source,
                });
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        copied += n as u64;
    }
}

/// The hex digest of a file on disk, by the algorithm of `digest`.
pub fn file_digest(path: &Path, digest: Digest) -> Result<String, FetchError> {
    match digest {
        Digest::Sha256(_) => sha256_file(path),
    }
}

/// The SHA-256 of a file on disk.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut reader = BufReader::new(File::open(path).map_err(io_error(path))?);
    let mut hasher = Sha256::new();
    copy_hashed(&mut reader, &mut io::sink(), &mut hasher).map_err(|e| match e {
        CopyError::Read { source, .. } | CopyError::Write(source) => io_error(path)(source),
    })?;
    Ok(hex(hasher))
}

/// A finished SHA-256 as lowercase hex, the form the catalog pins.
fn hex(hasher: Sha256) -> String {
    format!("{:x}", hasher.finalize())
}

/// Unpacks the archive's `members` into `dir`, each through a temporary file; their SHA-256s.
fn unpack(archive: &Path, members: &[&str], dir: &Path) -> Result<Vec<String>, FetchError> {
    let open = File::open(archive).map_err(io_error(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(open)));
    let bad = |problem: String| FetchError::Archive {
        archive: archive.to_path_buf(),
        problem,
    };
    let mut found: Vec<Option<(PathBuf, String)>> = vec![None; members.len()];
    let entries = tar
        .entries()
        .map_err(|e| bad(format!("not a tar.gz archive: {e}")))?;
    let mut result = Ok(());
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                result = Err(bad(format!("damaged archive: {e}")));
                break;
            }
        };
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(index) = members.iter().position(|m| *m == name) else {
            continue;
        };
        // Only the bytes of a regular file are installed: a link (whose content would be read
        // as empty), a sparse file (whose holes inflate to zeros) or a second copy of a member
        // is not what the catalog's members are.
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            let what = match kind {
                tar::EntryType::Symlink => "a symbolic link".to_string(),
                tar::EntryType::Link => "a hard link".to_string(),
                tar::EntryType::Directory => "a directory".to_string(),
                other => format!("a {other:?} entry"),
            };
            result = Err(bad(format!("{name} is {what}, not a regular file")));
            break;
        }
        if found[index].is_some() {
            result = Err(bad(format!("holds {name} twice")));
            break;
        }
        let dest = dir.join(base_name(members[index]));
        let temp = temp_beside(&dest);
        let mut hasher = Sha256::new();
        let copied = create_new(&temp)
            .and_then(|mut out| {
                copy_hashed(&mut entry, &mut out, &mut hasher).map_err(|e| match e {
                    CopyError::Read { source, .. } | CopyError::Write(source) => source,
                })?;
                out.sync_all()
            })
            .map(|()| hex(hasher));
        match copied {
            Ok(hash) => found[index] = Some((temp, hash)),
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                result = Err(io_error(&dest)(e));
                break;
            }
        }
    }
    let missing: Vec<&str> = members
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(m, _)| *m)
        .collect();
    if result.is_ok() && !missing.is_empty() {
        result = Err(bad(format!("lacks {}", missing.join(", "))));
    }
    if let Err(e) = result {
        for (temp, _) in found.into_iter().flatten() {
            let _ = std::fs::remove_file(temp);
        }
        return Err(e);
    }
    let mut hashes = Vec::with_capacity(members.len());
    for (member, slot) in members.iter().zip(found) {
        let (temp, hash) = slot.expect("checked above");
        let dest = dir.join(base_name(member));
        std::fs::rename(&temp, &dest).map_err(io_error(&dest))?;
        hashes.push(hash);
    }
    Ok(hashes)
}

/// The manifest an unpacked archive leaves beside its members: the archive's checksum and each
/// member's SHA-256 as unpacked, so that a later fetch or `data check` can tell an intact
/// installation without the archive.
fn manifest_path(source: &Source, dir: &Path) -> PathBuf {
    dir.join(format!(".{}.sha256", source.file.name))
}

/// The first line of a manifest: which archive, by its pinned checksum, the members came from.
fn manifest_header(source: &Source) -> String {
    format!(
        "# {} {} {}",
        source.file.name,
        source.file.digest.algorithm(),
        source.file.digest.hex()
    )
}

fn write_manifest(source: &Source, dir: &Path, hashes: &[String]) -> Result<(), FetchError> {
    let Install::Unpack { members } = source.install else {
        return Ok(());
    };
    let mut text = manifest_header(source) + "\n";
    for (member, hash) in members.iter().zip(hashes) {
        text.push_str(&format!("{hash}  {}\n", base_name(member)));
    }
    let path = manifest_path(source, dir);
    write_atomic(&path, text.as_bytes()).map_err(io_error(&path))
}

/// More than any manifest needs (one line per member); a longer file is not read.
const MANIFEST_LIMIT: u64 = 64 * 1024;

/// Whether an unpacked archive is installed intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpacked {
    /// Every member the catalog lists is listed in the manifest of this archive's checksum and
    /// present with the SHA-256 recorded there.
    Intact,
    /// Why not, naming the manifest, member or line concerned.
    NotIntact(String),
}

/// Whether every member of an unpacked archive is present with the SHA-256 its manifest
/// recorded (false when there is no manifest for this archive's checksum).
pub fn unpacked_intact(source: &Source, dir: &Path) -> Result<bool, FetchError> {
    Ok(unpacked_state(source, dir)? == Unpacked::Intact)
}

/// Checks an unpacked archive against its manifest. The catalog, not the manifest, says which
/// members there are: each must be listed once and be present and unchanged, and a manifest
/// listing anything else is not one `fetch` wrote, so no name in it is ever opened.
pub fn unpacked_state(source: &Source, dir: &Path) -> Result<Unpacked, FetchError> {
    let not_intact = |why: String| Ok(Unpacked::NotIntact(why));
    let Install::Unpack { members } = source.install else {
        return not_intact(format!("{} is not an archive to unpack", source.file.name));
    };
    let path = manifest_path(source, dir);
    let shown = path.display();
    let text = match read_manifest(&path) {
        Ok(Some(text)) => text,
        Ok(None) => return not_intact(format!("{shown} is longer than a manifest")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return not_intact(format!("no manifest {shown}"));
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return not_intact(format!("{shown} is not a manifest: {e}"));
        }
        Err(e) => return Err(io_error(&path)(e)),
    };
    let mut lines = text.lines();
    if lines.next() != Some(manifest_header(source).as_str()) {
        return not_intact(format!(
            "{shown} records another archive than {}",
            manifest_header(source).trim_start_matches("# ")
        ));
    }
    let mut listed: Vec<(&str, &str)> = Vec::with_capacity(members.len());
    for line in lines {
        let Some((hash, name)) = line.split_once("  ") else {
            return not_intact(format!("{shown}: unreadable line {line:?}"));
        };
        if !members.iter().any(|m| base_name(m) == name) {
            return not_intact(format!(
                "{shown} lists {name}, which is not a member of {}",
                source.file.name
            ));
        }
        if listed.iter().any(|&(_, n)| n == name) {
            return not_intact(format!("{shown} lists {name} twice"));
        }
        listed.push((hash, name));
    }
    for member in members {
        let name = base_name(member);
        let Some(&(hash, _)) = listed.iter().find(|&&(_, n)| n == name) else {
            return not_intact(format!("{shown} does not list {name}"));
        };
        let file = dir.join(name);
        if !file.is_file() {
            return not_intact(format!("{} is missing", file.display()));
        }
        if sha256_file(&file)? != hash {
            return not_intact(format!(
                "{} differs from the SHA-256 its manifest records",
                file.display()
            ));
        }
    }
    Ok(Unpacked::Intact)
}

/// A manifest's text; `None` when the file is longer than [`MANIFEST_LIMIT`], which is then
/// not read. Something other than a file under the name is `InvalidData`, as is text that is
/// not UTF-8.
fn read_manifest(path: &Path) -> io::Result<Option<String>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a file"));
    }
    if meta.len() > MANIFEST_LIMIT {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    File::open(path)?
        .take(MANIFEST_LIMIT + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MANIFEST_LIMIT {
        return Ok(None);
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}
