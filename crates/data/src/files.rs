//! Reading data files that may or may not be gzipped, and finding them in a directory.
//!
//! Compression is detected from the gzip magic bytes rather than the file name: mirrors
//! sometimes ship decompressed files under `.gz` names (or the reverse), and the official
//! downloads must load unchanged either way. Files are read as streams, so that how much is
//! inflated is decided by what the format declares, not by what the file holds.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use crate::error::{DataError, Result};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A data file's content as a stream, inflated as it is read when the file is gzipped. Nothing
/// is inflated beyond what the reader asks for, so a reader that stops where the format says
/// the content ends (an IDX header's dimensions, a CIFAR batch's record limit) never inflates
/// a gzip bomb's excess into memory.
pub(crate) struct DataStream {
    path: PathBuf,
    content: Content,
}

enum Content {
    Plain(BufReader<Disk>),
    /// The multi-member decoder accepts concatenated gzip files too. Boxed: its inflate state
    /// is several times the size of a plain reader.
    Gzip(Box<MultiGzDecoder<BufReader<Disk>>>),
}

/// The file on disk, remembering whether reading it failed, so that an error coming out of the
/// gzip decoder is reported as the disk's ([`DataError::Io`]) or the stream's
/// ([`DataError::Gzip`]).
struct Disk {
    file: File,
    failed: bool,
}

impl Read for Disk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.file.read(buf);
        self.failed |= result
            .as_ref()
            .is_err_and(|e| e.kind() != io::ErrorKind::Interrupted);
        result
    }
}

impl DataStream {
    /// Opens `path`; gzip is detected from the magic bytes. Anything but a regular file (after
    /// links) is refused before it is opened: a device such as `/dev/zero` reads without end,
    /// and opening a FIFO blocks until it has a writer.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let io_error = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let kind = std::fs::metadata(path).map_err(io_error)?.file_type();
        if kind.is_dir() {
            return Err(DataError::format(path, "a data file", "a directory"));
        }
        if !kind.is_file() {
            return Err(DataError::format(
                path,
                "a data file",
                "a device, FIFO or socket: not a regular file",
            ));
        }
        let file = File::open(path).map_err(io_error)?;
        let mut disk = BufReader::new(Disk {
            file,
            failed: false,
        });
        let content = if disk.fill_buf().map_err(io_error)?.starts_with(&GZIP_MAGIC) {
            Content::Gzip(Box::new(MultiGzDecoder::new(disk)))
        } else {
            Content::Plain(disk)
        };
        Ok(DataStream {
            path: path.to_path_buf(),
            content,
        })
    }

    /// Reads some bytes into `buf`; 0 only at the end of the content.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            let (result, from_disk) = match &mut self.content {
                Content::Plain(r) => (r.read(buf), true),
                Content::Gzip(r) => (r.read(buf), r.get_ref().get_ref().failed),
            };
            match result {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) if from_disk => {
                    return Err(DataError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
                Err(source) => {
                    return Err(DataError::Gzip {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// Reads into `buf` until it is full or the content ends; the bytes read.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read_some(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    }

    /// Passes the next `len` bytes (fewer if the content ends first) to `sink` in chunks, each
    /// with its offset from the first; the bytes passed. Memory stays at one chunk.
    pub(crate) fn feed(
        &mut self,
        len: u64,
        mut sink: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<u64> {
        let mut buf = vec![0u8; len.min(1 << 16) as usize];
        let mut done = 0;
        while done < len {
            let want = buf.len().min((len - done) as usize);
            let n = self.read_some(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            sink(done, &buf[..n])?;
            done += n as u64;
        }
        Ok(done)
    }

    /// Whether the content has ended; reads (and loses) one byte when it has not.
    pub(crate) fn at_end(&mut self) -> Result<bool> {
        Ok(self.fill(&mut [0u8])? == 0)
    }
}

/// The whole (decompressed) content of `path`, which may be at most `limit` bytes: a longer
/// one is refused once `limit + 1` bytes are read. Empty content is an error because no
/// format read by this crate is meaningful without at least one item.
pub(crate) fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let mut stream = DataStream::open(path)?;
    let mut bytes = Vec::new();
    stream.feed(limit, |_, chunk| {
        bytes.extend_from_slice(chunk);
        Ok(())
    })?;
    if !stream.at_end()? {
        return Err(DataError::format(
            path,
            format!("at most {limit} bytes"),
            "more",
        ));
    }
    if bytes.is_empty() {
        return Err(empty(path));
    }
    Ok(bytes)
}

/// The error for a file without content.
pub(crate) fn empty(path: &Path) -> DataError {
    DataError::format(path, "data", "an empty file")
}

/// The plain and the `.gz` spelling of `name` inside `dir`, plain first so that a file the
/// user decompressed in place wins over a stale archive next to it.
fn candidates(dir: &Path, name: &str) -> [PathBuf; 2] {
    [dir.join(name), dir.join(format!("{name}.gz"))]
}

/// `dir/name` or `dir/name.gz`, whichever exists (`None` when neither does). A directory of
/// that name counts: reading it then says what it is, instead of "no such file".
pub(crate) fn find_optional(dir: &Path, name: &str) -> Option<PathBuf> {
    candidates(dir, name).into_iter().find(|p| p.exists())
}

/// Like [`find_optional`], but a missing file is an error naming both tried paths.
pub(crate) fn find_required(dir: &Path, name: &str) -> Result<PathBuf> {
    find_optional(dir, name).ok_or_else(|| DataError::NotFound {
        tried: candidates(dir, name).to_vec(),
    })
}

/// Both spellings of every name, for the error when none of several optional files exists.
pub(crate) fn all_candidates<'a>(
    dir: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<PathBuf> {
    names.into_iter().flat_map(|n| candidates(dir, n)).collect()
}
