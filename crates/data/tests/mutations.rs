//! Property tests: the loaders read real files mutated at random (truncated, bytes flipped,
//! header fields changed, text bytes replaced) and must return a value or an error, never
//! panic or abort. The real files are the committed extracts (MNIST, PTB) and, where the real
//! copies are present (CI), CIFAR-10's first records; without them CIFAR-10 records are drawn
//! at random in the official layout.

use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use levelset_data::testing::{fixture_data_dir, real_data_dir};
use levelset_data::{load_cifar10, load_mnist, load_ptb};
use proptest::prelude::*;

/// A mutation of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    /// A big-endian u32 written at a header offset (4, 8 or 12: counts and dimensions).
    Header(usize, u32),
    Insert(prop::sample::Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (
            prop::sample::select(vec![4usize, 8, 12]),
            prop_oneof![
                Just(0u32),
                Just(1),
                Just(u32::MAX),
                Just(1 << 31),
                0u32..100_000,
                any::<u32>()
            ]
        )
            .prop_map(|(at, v)| Mutation::Header(at, v)),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..8)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(bytes: &[u8], mutation: &Mutation) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match mutation {
        Mutation::Truncate(i) => out.truncate(i.index(bytes.len() + 1)),
        // An earlier truncation can leave nothing to flip.
        Mutation::Flip(i, x) if !out.is_empty() => {
            let at = i.index(out.len());
            out[at] ^= x;
        }
        Mutation::Flip(..) => {}
        Mutation::Header(at, v) => {
            if out.len() >= at + 4 {
                out[*at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        Mutation::Insert(i, b) => {
            let at = i.index(out.len() + 1);
            out.splice(at..at, b.iter().copied());
        }
    }
    out
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The MNIST extract's four files, raw (ungzipped), cut to their first 20 records.
fn mnist_files() -> &'static [(&'static str, Vec<u8>); 4] {
    static FILES: OnceLock<[(&'static str, Vec<u8>); 4]> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = fixture_data_dir().join("mnist");
        let cut = |name: &'static str| {
            let mut bytes = gunzip(&dir.join(format!("{name}.gz")));
            let n = 20u32;
            bytes[4..8].copy_from_slice(&n.to_be_bytes());
            let record = if bytes[3] == 3 { 784 } else { 1 };
            let header = if bytes[3] == 3 { 16 } else { 8 };
            bytes.truncate(header + 20 * record);
            (name, bytes)
        };
        [
            cut("train-images-idx3-ubyte"),
            cut("train-labels-idx1-ubyte"),
            cut("t10k-images-idx3-ubyte"),
            cut("t10k-labels-idx1-ubyte"),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_mnist_files_load_or_fail_cleanly(
        which in 0usize..4,
        mutation in mutation(),
        gzip in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for (i, (name, bytes)) in mnist_files().iter().enumerate() {
            let bytes = if i == which { apply(bytes, &mutation) } else { bytes.clone() };
            if gzip {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut gz, &bytes).unwrap();
                std::fs::write(dir.path().join(format!("{name}.gz")), gz.finish().unwrap()).unwrap();
            } else {
                std::fs::write(dir.path().join(name), &bytes).unwrap();
            }
        }
        if let Ok(split) = load_mnist(dir.path()) {
            for set in [&split.train, &split.test] {
                prop_assert_eq!(set.images.len(), set.len() * set.channels * set.height * set.width);
            }
        }
    }

    #[test]
    fn mutated_gzip_streams_load_or_fail_cleanly(mutation in mutation()) {
        // The compressed bytes themselves mutated: a damaged download.
        let dir = tempfile::tempdir().unwrap();
        let source = fixture_data_dir().join("mnist");
        for name in ["train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
            std::fs::copy(source.join(name), dir.path().join(name)).unwrap();
        }
        let images = std::fs::read(source.join("train-images-idx3-ubyte.gz")).unwrap();
        std::fs::write(dir.path().join("train-images-idx3-ubyte.gz"), apply(&images[..4096], &mutation)).unwrap();
        let _ = load_mnist(dir.path());
    }
}

/// The first 8 CIFAR-10 test records of the real copy, else 8 random records.
fn cifar_records() -> &'static Vec<u8> {
    static RECORDS: OnceLock<Vec<u8>> = OnceLock::new();
    RECORDS.get_or_init(|| match real_data_dir() {
        Some(dir) => {
            let mut bytes = gunzip(&dir.join("cifar10/test_batch.bin.gz"));
            bytes.truncate(8 * 3073);
            bytes
        }
        None => (0..8 * 3073)
            .map(|i: usize| {
                if i.is_multiple_of(3073) {
                    (i / 3073) as u8
                } else {
                    (i * 7) as u8
                }
            })
            .collect(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_cifar_batches_load_or_fail_cleanly(
        in_train in any::<bool>(),
        mutation in mutation(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let records = cifar_records();
        let (train, test) = if in_train {
            (apply(records, &mutation), records.clone())
        } else {
            (records.clone(), apply(records, &mutation))
        };
        std::fs::write(dir.path().join("data_batch_1.bin"), train).unwrap();
        std::fs::write(dir.path().join("test_batch.bin"), test).unwrap();
        if let Ok(split) = load_cifar10(dir.path()) {
            prop_assert_eq!(split.train.images.len(), split.train.len() * 3 * 32 * 32);
        }
    }

    #[test]
    fn mutated_ptb_text_loads_or_fails_cleanly(
        mutations in prop::collection::vec(mutation(), 1..4),
        bom in any::<bool>(),
    ) {
        static TEXT: OnceLock<Vec<u8>> = OnceLock::new();
        let text = TEXT.get_or_init(|| {
            let mut t = std::fs::read(fixture_data_dir().join("ptb/ptb.valid.txt")).unwrap();
            t.truncate(3000);
            t
        });
        let mut bytes = text.clone();
        for m in &mutations {
            bytes = apply(&bytes, m);
        }
        if bom {
            bytes.splice(0..0, [0xEF, 0xBB, 0xBF]);
        }
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("ptb.train.txt");
        std::fs::write(&train, &bytes).unwrap();
        if let Ok(corpus) = load_ptb(&train, &train) {
            prop_assert!(corpus.train.iter().all(|&id| (id as usize) < corpus.vocab.len()));
        }
    }
}
