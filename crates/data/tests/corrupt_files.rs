//! Small generated files, valid and broken, in a temporary directory: every failure must be
//! the right error variant and name the offending file.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use levelset_data::{
    DataError, count_cifar10, count_mnist, load_cifar10, load_mnist, load_ptb, read_idx_images,
    read_idx_labels,
};
use tempfile::TempDir;

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(payload);
    out
}

/// `n` 2x3 images whose pixels count up from the image index.
fn idx_images(n: u32) -> Vec<u8> {
    let payload: Vec<u8> = (0..n * 6).map(|k| (k / 6 + k % 6) as u8).collect();
    idx(0x803, &[n, 2, 3], &payload)
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    idx(0x801, &[labels.len() as u32], labels)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A valid gzipped MNIST directory: 3 training and 2 test images.
fn mnist_dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &format!("{TRAIN_IMAGES}.gz"),
        &gz(&idx_images(3)),
    );
    write(
        dir.path(),
        &format!("{TRAIN_LABELS}.gz"),
        &gz(&idx_labels(&[0, 9, 4])),
    );
    write(
        dir.path(),
        &format!("{TEST_IMAGES}.gz"),
        &gz(&idx_images(2)),
    );
    write(
        dir.path(),
        &format!("{TEST_LABELS}.gz"),
        &gz(&idx_labels(&[1, 2])),
    );
    dir
}

fn assert_names(err: &DataError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name {}: {msg}",
        path.display()
    );
}

#[test]
fn valid_gzipped_mnist_loads() {
    let dir = mnist_dir();
    let split = load_mnist(dir.path()).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (3, 2));
    assert_eq!(
        (split.train.channels, split.train.height, split.train.width),
        (1, 2, 3)
    );
    assert_eq!(split.train.labels, [0, 9, 4]);
    assert_eq!(split.train.image(2), &[2, 3, 4, 5, 6, 7]);
}

#[test]
fn compression_is_detected_by_content_not_name() {
    let dir = tempfile::tempdir().unwrap();
    // Raw content under plain names, and the reverse mix-ups: raw under a .gz name, gzip
    // under a plain name.
    write(dir.path(), TRAIN_IMAGES, &idx_images(3));
    write(dir.path(), TRAIN_LABELS, &idx_labels(&[0, 9, 4]));
    write(dir.path(), &format!("{TEST_IMAGES}.gz"), &idx_images(2));
    write(dir.path(), TEST_LABELS, &gz(&idx_labels(&[1, 2])));
    let split = load_mnist(dir.path()).unwrap();
    assert_eq!(split.train.labels, [0, 9, 4]);
    assert_eq!(split.test.labels, [1, 2]);
    assert_eq!(split.test.image(1), &[1, 2, 3, 4, 5, 6]);
}

#[test]
fn truncated_and_overlong_payloads_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let full = idx_images(3);
    for (name, bytes, found) in [
        ("short", &full[..full.len() - 1], "17 bytes"),
        (
            "long",
            &[full.as_slice(), &[0]].concat()[..],
            "longer than its header declares",
        ),
    ] {
        let path = write(dir.path(), name, bytes);
        let err = read_idx_images(&path).unwrap_err();
        assert!(matches!(err, DataError::Format { .. }), "{err:?}");
        assert_names(&err, &path);
        let msg = err.to_string();
        assert!(
            msg.contains("expected 18 payload bytes") && msg.contains(found),
            "{msg}"
        );
    }
}

#[test]
fn bad_magic_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    // A label file where images are expected, and the reverse.
    let images = write(dir.path(), "images", &gz(&idx_labels(&[1, 2])));
    let err = read_idx_images(&images).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    assert_names(&err, &images);
    assert!(err.to_string().contains("0x00000801"), "{err}");

    let labels = write(dir.path(), "labels", &idx_images(1));
    let err = read_idx_labels(&labels).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    assert_names(&err, &labels);
}

#[test]
fn short_header_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "stub", &[0, 0, 8, 3, 0, 0]);
    let err = read_idx_images(&path).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    assert_names(&err, &path);
}

#[test]
fn image_and_label_counts_must_agree() {
    let dir = mnist_dir();
    let labels = write(
        dir.path(),
        &format!("{TEST_LABELS}.gz"),
        &gz(&idx_labels(&[1, 2, 3])),
    );
    let err = load_mnist(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                image_count: 2,
                label_count: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &labels);
    assert_names(&err, &dir.path().join(format!("{TEST_IMAGES}.gz")));
}

#[test]
fn corrupt_gzip_stream_is_rejected() {
    let dir = mnist_dir();
    let path = write(
        dir.path(),
        &format!("{TRAIN_IMAGES}.gz"),
        &[0x1f, 0x8b, 0x42, 0x13, 0x37, 0, 1, 2, 3],
    );
    let err = load_mnist(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
    assert_names(&err, &path);

    // A valid stream cut short fails the same way.
    let full = gz(&idx_images(3));
    let path = write(
        dir.path(),
        &format!("{TRAIN_IMAGES}.gz"),
        &full[..full.len() / 2],
    );
    let err = load_mnist(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
    assert_names(&err, &path);
}

#[test]
fn empty_files_are_rejected() {
    let dir = mnist_dir();
    let path = write(dir.path(), &format!("{TRAIN_LABELS}.gz"), &[]);
    let err = load_mnist(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    assert_names(&err, &path);
    assert!(err.to_string().contains("empty"), "{err}");

    // A gzip stream of nothing is just as empty.
    let path = write(dir.path(), &format!("{TRAIN_LABELS}.gz"), &gz(&[]));
    let err = load_mnist(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    assert_names(&err, &path);
}

#[test]
fn missing_file_names_both_spellings() {
    let dir = mnist_dir();
    std::fs::remove_file(dir.path().join(format!("{TEST_LABELS}.gz"))).unwrap();
    let err = load_mnist(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
    assert_names(&err, &dir.path().join(TEST_LABELS));
    assert_names(&err, &dir.path().join(format!("{TEST_LABELS}.gz")));
}

#[test]
fn label_out_of_range_names_index_and_value() {
    let dir = mnist_dir();
    let path = write(dir.path(), TRAIN_LABELS, &idx_labels(&[0, 10, 4]));
    std::fs::remove_file(dir.path().join(format!("{TRAIN_LABELS}.gz"))).unwrap();
    let err = load_mnist(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Label {
                index: 1,
                value: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &path);
}

/// One CIFAR record: `label` then 3072 pixels counting up from `seed`.
fn cifar_record(label: u8, seed: u8) -> Vec<u8> {
    std::iter::once(label)
        .chain((0..3072).map(|k| (k as u8).wrapping_add(seed)))
        .collect()
}

fn cifar_dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "data_batch_1.bin.gz",
        &gz(&[cifar_record(3, 0), cifar_record(7, 1)].concat()),
    );
    // Batch 2 missing on purpose: any subset of the five batches is a training set.
    write(dir.path(), "data_batch_3.bin", &cifar_record(9, 2));
    write(dir.path(), "test_batch.bin.gz", &gz(&cifar_record(0, 3)));
    dir
}

#[test]
fn cifar_batches_concatenate_in_order() {
    let dir = cifar_dir();
    let split = load_cifar10(dir.path()).unwrap();
    assert_eq!(split.train.labels, [3, 7, 9]);
    assert_eq!(split.test.labels, [0]);
    assert_eq!(
        (split.train.channels, split.train.height, split.train.width),
        (3, 32, 32)
    );
    assert_eq!(split.train.image(2), &cifar_record(9, 2)[1..]);
}

#[test]
fn cifar_size_must_be_a_multiple_of_the_record() {
    let dir = cifar_dir();
    let path = write(dir.path(), "data_batch_3.bin", &cifar_record(9, 2)[..3000]);
    let err = load_cifar10(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    assert_names(&err, &path);
    assert!(err.to_string().contains("3000 bytes"), "{err}");
}

#[test]
fn cifar_label_out_of_range() {
    let dir = cifar_dir();
    let path = write(
        dir.path(),
        "test_batch.bin.gz",
        &gz(&[cifar_record(1, 0), cifar_record(10, 0)].concat()),
    );
    let err = load_cifar10(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Label {
                index: 1,
                value: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &path);
}

#[test]
fn cifar_missing_batches_are_reported() {
    let dir = cifar_dir();
    std::fs::remove_file(dir.path().join("test_batch.bin.gz")).unwrap();
    let err = load_cifar10(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
    assert_names(&err, &dir.path().join("test_batch.bin.gz"));

    let empty = tempfile::tempdir().unwrap();
    let err = load_cifar10(empty.path()).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
    assert_names(&err, &empty.path().join("data_batch_5.bin.gz"));
}

#[test]
fn ptb_small_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.txt", b"the cat sat\nthe dog\n");
    let heldout = write(dir.path(), "heldout.txt.gz", &gz(b"the bird sat\n"));
    let corpus = load_ptb(&train, &heldout).unwrap();
    // the:2, <eos>:2, then cat, dog, sat alphabetically, then the absent <unk>.
    let words: Vec<&str> = (0..corpus.vocab.len() as u32)
        .map(|i| corpus.vocab.word(i))
        .collect();
    assert_eq!(words, ["<eos>", "the", "cat", "dog", "sat", "<unk>"]);
    assert_eq!(corpus.train, [1, 2, 4, 0, 1, 3, 0]);
    assert_eq!(corpus.heldout, [1, 5, 4, 0]);
    assert_eq!(corpus.heldout_unknown, 1);
}

#[test]
fn ptb_empty_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.txt", b"a b\n");
    let empty = write(dir.path(), "empty.txt", b"");
    for (train, heldout) in [(&empty, &good), (&good, &empty)] {
        let err = load_ptb(train, heldout).unwrap_err();
        assert!(matches!(err, DataError::Format { .. }), "{err:?}");
        assert_names(&err, &empty);
    }
    let missing = dir.path().join("missing.txt");
    let err = load_ptb(&good, &missing).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert_names(&err, &missing);
}

#[test]
fn a_directory_where_a_data_file_should_be_says_so() {
    let dir = mnist_dir();
    let path = dir.path().join(format!("{TEST_LABELS}.gz"));
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let err = load_mnist(dir.path()).unwrap_err();
    assert!(err.to_string().contains("a directory"), "{err}");
    assert_names(&err, &path);
}

/// The streaming counts `data check` reports agree with the loaders on valid folders, and
/// refuse what the loaders refuse, with the same error.
#[test]
fn counts_agree_with_the_loaders() {
    assert_eq!(count_mnist(mnist_dir().path()).unwrap(), (3, 2));
    assert_eq!(count_cifar10(cifar_dir().path()).unwrap(), (3, 1));

    let damages: [fn(&Path); 3] = [
        |d| {
            write(d, TRAIN_LABELS, &idx_labels(&[0, 10, 4]));
        },
        |d| {
            write(
                d,
                &format!("{TEST_LABELS}.gz"),
                &gz(&idx_labels(&[1, 2, 3])),
            );
        },
        |d| {
            write(d, &format!("{TEST_IMAGES}.gz"), &gz(&idx_images(2))[..20]);
        },
    ];
    for damage in damages {
        let dir = mnist_dir();
        damage(dir.path());
        let loaded = load_mnist(dir.path()).unwrap_err().to_string();
        assert_eq!(count_mnist(dir.path()).unwrap_err().to_string(), loaded);
    }
    let dir = cifar_dir();
    write(dir.path(), "data_batch_3.bin", &cifar_record(9, 2)[..3000]);
    let loaded = load_cifar10(dir.path()).unwrap_err().to_string();
    assert_eq!(count_cifar10(dir.path()).unwrap_err().to_string(), loaded);
}

/// A device (or FIFO, or socket) under a data file's name is refused before it is opened:
/// `/dev/zero` would otherwise read as an endless file of zeros, and a FIFO would block the
/// open until someone writes to it.
#[cfg(unix)]
#[test]
fn a_device_where_a_data_file_should_be_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("ptb.train.txt");
    std::os::unix::fs::symlink("/dev/zero", &text).unwrap();
    let err = load_ptb(&text, &text).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    assert_names(&err, &text);
    assert!(err.to_string().contains("not a regular file"), "{err}");
}
