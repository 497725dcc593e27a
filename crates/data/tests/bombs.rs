//! Gzip bombs: small files that inflate to far more than their content declares. The loaders
//! (and through them `levelset data check`) must refuse them after inflating no more than the
//! header declares (or, where a format has no header, than its files can hold), instead of
//! inflating the whole stream into memory first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use levelset_data::{
    DataError, count_cifar10, count_mnist, load_cifar10, load_ptb, read_idx_images, read_idx_labels,
};

/// How far each bomb inflates past its valid start.
const BOMB_ZEROS: usize = 300 << 20;

/// `BOMB_ZEROS` zero bytes gzipped (about 300 KB), made once, as 300 copies of one member of
/// 1 MiB of zeros, which is quick to compress well. A bomb is a member holding a valid start
/// followed by these, which a gzip reader reads on through as one stream.
fn zeros_members() -> &'static [u8] {
    static MEMBERS: OnceLock<Vec<u8>> = OnceLock::new();
    MEMBERS.get_or_init(|| {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&[0u8; 1 << 20]).unwrap();
        enc.finish().unwrap().repeat(BOMB_ZEROS >> 20)
    })
}

/// `start` gzipped, followed by the zeros member, written to `dir/name`.
fn bomb(dir: &Path, name: &str, start: &[u8]) -> PathBuf {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(start).unwrap();
    let mut bytes = enc.finish().unwrap();
    bytes.extend_from_slice(zeros_members());
    assert!(bytes.len() < 1 << 20, "a bomb of {} bytes", bytes.len());
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn idx_header(magic: u32, dims: &[u32]) -> Vec<u8> {
    std::iter::once(magic)
        .chain(dims.iter().copied())
        .flat_map(u32::to_be_bytes)
        .collect()
}

/// The message of `result`'s error, which must be a format error naming `path`, and how long
/// the call took.
fn format_error<T>(path: &Path, call: impl FnOnce() -> Result<T, DataError>) -> String {
    let err = match call() {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(err) => err,
    };
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    msg
}

/// An IDX file declaring 10 images of 28x28, holding them, then 300 MB of zeros: refused as
/// longer than its header declares. The same for a label file (whose zeros are valid labels).
#[test]
fn an_idx_file_longer_than_its_header_declares_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let images = [idx_header(0x803, &[10, 28, 28]), vec![7; 10 * 784]].concat();
    let path = bomb(dir.path(), "images.gz", &images);
    let msg = format_error(&path, || read_idx_images(&path));
    assert!(
        msg.contains("expected 7840 payload bytes")
            && msg.contains("longer than its header declares"),
        "{msg}"
    );
    let labels = [idx_header(0x801, &[10]), vec![3; 10]].concat();
    let path = bomb(dir.path(), "labels.gz", &labels);
    let msg = format_error(&path, || read_idx_labels(&path));
    assert!(msg.contains("longer than its header declares"), "{msg}");
}

/// A header declaring 2^31 images of 28x28 (1.7 TB) in a file of 100 bytes fails on the bytes
/// present, without first reserving what the header declares.
#[test]
fn a_header_declaring_billions_of_images_fails_on_the_bytes_present() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("images");
    std::fs::write(
        &path,
        [idx_header(0x803, &[1 << 31, 28, 28]), vec![0; 100]].concat(),
    )
    .unwrap();
    let msg = format_error(&path, || read_idx_images(&path));
    assert!(
        msg.contains("expected 1683627180032 payload bytes") && msg.contains("found 100 bytes"),
        "{msg}"
    );
}

/// A CIFAR-10 batch has no header, but no batch of the format holds more than 10,000 records:
/// 300 MB of zeros (97,000 records of label 0) is refused after the 10,000th.
#[test]
fn a_cifar_batch_longer_than_any_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = bomb(dir.path(), "data_batch_1.bin", &[]);
    std::fs::write(dir.path().join("test_batch.bin"), vec![0u8; 3073]).unwrap();
    let msg = format_error(&path, || load_cifar10(dir.path()));
    assert!(msg.contains("at most 10000 records"), "{msg}");
    let msg = format_error(&path, || count_cifar10(dir.path()));
    assert!(msg.contains("at most 10000 records"), "{msg}");
}

/// `data check`'s counts refuse a bomb in an MNIST folder as the loader does.
#[test]
fn counting_refuses_a_bomb() {
    let dir = tempfile::tempdir().unwrap();
    let images = [idx_header(0x803, &[10, 28, 28]), vec![7; 10 * 784]].concat();
    let labels = [idx_header(0x801, &[10]), vec![3; 10]].concat();
    for name in ["t10k-images-idx3-ubyte", "train-images-idx3-ubyte"] {
        std::fs::write(dir.path().join(name), &images).unwrap();
    }
    for name in ["t10k-labels-idx1-ubyte", "train-labels-idx1-ubyte"] {
        std::fs::write(dir.path().join(name), &labels).unwrap();
    }
    assert_eq!(count_mnist(dir.path()).unwrap(), (10, 10));
    let path = bomb(dir.path(), "train-labels-idx1-ubyte", &labels);
    let msg = format_error(&path, || count_mnist(dir.path()));
    assert!(msg.contains("longer than its header declares"), "{msg}");
}

/// A text has no header either: one that inflates past the text limit (64 MiB, twelve times
/// Penn Treebank's largest file) is refused there.
#[test]
fn a_text_longer_than_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = bomb(dir.path(), "ptb.train.txt", b"the cat sat\n");
    let msg = format_error(&path, || load_ptb(&path, &path));
    assert!(msg.contains("at most 67108864 bytes"), "{msg}");
}

/// Refusing a bomb takes about as long as reading what its header declares, not as long as
/// inflating it: far under the time inflating 300 MB takes on a slow machine.
#[test]
fn refusing_a_bomb_is_fast() {
    let dir = tempfile::tempdir().unwrap();
    let labels = [idx_header(0x801, &[10]), vec![3; 10]].concat();
    let path = bomb(dir.path(), "labels.gz", &labels);
    let start = Instant::now();
    let _ = format_error(&path, || read_idx_labels(&path));
    let took = start.elapsed();
    assert!(took < Duration::from_millis(250), "took {took:?}");
}
