//! The offline real data copies (see shared/data/README.md), checked against values computed
//! independently from the files with Python's gzip module. Where `$LEVELSET_DATA_DIR` is set
//! (CI sets it) a missing copy fails loudly; on a bare clone each test reports itself skipped
//! by name (`levelset_data::testing`), and `fixtures.rs` checks the committed extracts.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use levelset_data::testing::{real_data_dir, real_data_or_skip};
use levelset_data::{
    ChannelStats, Corpus, Split, batchify, center_crop, count_cifar10, count_mnist, load_cifar10,
    load_mnist, load_ptb, random_crop_flip,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn data_dir(sub: &str) -> PathBuf {
    let dir = real_data_dir()
        .expect("each test checks real_data_or_skip first")
        .join(sub);
    assert!(
        dir.is_dir(),
        "real data copy missing: {} is not a directory; set LEVELSET_DATA_DIR to the folder \
         holding mnist/, cifar10/ and ptb/",
        dir.display()
    );
    dir
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn byte_sum(bytes: &[u8]) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum()
}

// Loaded once per test binary: CIFAR alone decompresses 37 MB.
fn mnist() -> &'static Split {
    static SPLIT: OnceLock<Split> = OnceLock::new();
    SPLIT.get_or_init(|| load_mnist(&data_dir("mnist")).unwrap_or_else(|e| panic!("{e}")))
}

fn cifar() -> &'static Split {
    static SPLIT: OnceLock<Split> = OnceLock::new();
    SPLIT.get_or_init(|| load_cifar10(&data_dir("cifar10")).unwrap_or_else(|e| panic!("{e}")))
}

fn ptb() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = data_dir("ptb");
        load_ptb(&dir.join("ptb.valid.txt"), &dir.join("ptb.test.txt"))
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

#[test]
fn mnist_counts_histograms_and_first_images() {
    if real_data_or_skip().is_none() {
        return;
    }
    let Split { train, test } = mnist();
    for set in [train, test] {
        assert_eq!((set.channels, set.height, set.width), (1, 28, 28));
        assert_eq!(set.images.len(), set.len() * 784);
    }
    assert_eq!((train.len(), test.len()), (8000, 2000));
    assert_eq!(count_mnist(&data_dir("mnist")).unwrap(), (8000, 2000));
    assert_eq!(
        train.label_histogram(),
        [812, 907, 771, 832, 774, 703, 820, 841, 759, 781]
    );
    assert_eq!(
        test.label_histogram(),
        [189, 220, 220, 200, 206, 160, 194, 229, 185, 197]
    );
    assert_eq!(
        (
            train.labels[0],
            byte_sum(train.image(0)),
            fnv1a(train.image(0))
        ),
        (1, 31077, 0xa70d_ceea_4165_ea04)
    );
    assert_eq!(
        (
            test.labels[0],
            byte_sum(test.image(0)),
            fnv1a(test.image(0))
        ),
        (7, 13623, 0x0bf9_bf10_6b3c_b456)
    );
}

#[test]
fn cifar_counts_histograms_and_first_records() {
    if real_data_or_skip().is_none() {
        return;
    }
    let Split { train, test } = cifar();
    for set in [train, test] {
        assert_eq!((set.channels, set.height, set.width), (3, 32, 32));
        assert_eq!(set.images.len(), set.len() * 3072);
    }
    assert_eq!(train.label_histogram(), [1000; 10]);
    assert_eq!(test.label_histogram(), [200; 10]);
    assert_eq!(count_cifar10(&data_dir("cifar10")).unwrap(), (10_000, 2000));
    assert_eq!(
        (
            train.labels[0],
            byte_sum(train.image(0)),
            fnv1a(train.image(0))
        ),
        (1, 344_074, 0x1282_1823_f8d8_2253)
    );
    assert_eq!(
        (
            test.labels[0],
            byte_sum(test.image(0)),
            fnv1a(test.image(0))
        ),
        (1, 308_351, 0xc8c5_14c4_ed9c_310e)
    );
}

#[test]
fn cifar_channel_stats_match_reference() {
    if real_data_or_skip().is_none() {
        return;
    }
    let stats = ChannelStats::from_images(&cifar().train);
    let (mean, std) = (
        [0.493_403, 0.483_115, 0.447_049],
        [0.246_036, 0.244_056, 0.261_567],
    );
    for c in 0..3 {
        assert!((0.3..0.6).contains(&stats.mean[c]));
        assert!(
            (stats.mean[c] - mean[c]).abs() < 1e-5,
            "mean {:?}",
            stats.mean
        );
        assert!((stats.std[c] - std[c]).abs() < 1e-5, "std {:?}", stats.std);
    }
}

#[test]
fn cifar_crops_of_a_real_record() {
    if real_data_or_skip().is_none() {
        return;
    }
    let train = &cifar().train;
    let stats = ChannelStats::from_images(train);
    let center = center_crop(train, 0, 24, &stats).unwrap();
    assert_eq!(center.len(), 3 * 24 * 24);
    // Independent indexing: record bytes are [c][row][col] with 32x32 planes, offset 4.
    let raw = train.image(0);
    for c in 0..3 {
        for y in 0..24 {
            for x in 0..24 {
                let p = f32::from(raw[c * 1024 + (y + 4) * 32 + x + 4]);
                let expected = (p / 255.0 - stats.mean[c]) / stats.std[c];
                assert!((center[(c * 24 + y) * 24 + x] - expected).abs() < 1e-5);
            }
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let random = random_crop_flip(train, 5, 24, &stats, &mut rng).unwrap();
    assert_eq!(random.len(), 3 * 24 * 24);
    assert!(random.iter().all(|v| v.is_finite()));
}

#[test]
fn ptb_vocabulary_and_token_counts() {
    if real_data_or_skip().is_none() {
        return;
    }
    let corpus = ptb();
    let text = std::fs::read_to_string(data_dir("ptb").join("ptb.valid.txt")).unwrap();
    let mut distinct: HashSet<&str> = text.split_whitespace().collect();
    distinct.insert("<eos>");
    distinct.insert("<unk>");
    assert_eq!(corpus.vocab.len(), distinct.len());
    assert_eq!(corpus.vocab.len(), 6022);
    assert_eq!(corpus.train.len(), 73_760);
    assert_eq!(corpus.heldout.len(), 82_430);
    assert_eq!(corpus.heldout_unknown, 3368);
    // Most frequent first: "the" 4122, "<unk>" 3485, "<eos>" 3370 (one per sentence).
    assert_eq!(corpus.vocab.id("the"), Some(0));
    assert_eq!((corpus.vocab.unk_id(), corpus.vocab.eos_id()), (1, 2));
    let eos = corpus
        .train
        .iter()
        .filter(|&&t| t == corpus.vocab.eos_id())
        .count();
    assert_eq!(eos, 3370);
    let first: Vec<&str> = corpus.train[..4]
        .iter()
        .map(|&t| corpus.vocab.word(t))
        .collect();
    assert_eq!(first, ["consumers", "may", "want", "to"]);
}

#[test]
fn ptb_streams_for_the_small_config() {
    if real_data_or_skip().is_none() {
        return;
    }
    let corpus = ptb();
    let streams = batchify(&corpus.train, 20).unwrap();
    assert_eq!(
        (streams.batch, streams.len, streams.ids.len()),
        (20, 3688, 73_760)
    );
    assert_eq!(streams.num_windows(20), 184);
    for k in [0, 183] {
        let (x, y) = streams.window(k, 20);
        assert_eq!((x.len(), y.len()), (400, 400));
        for b in 0..20 {
            let start = b * 3688 + k * 20;
            assert_eq!(&x[b * 20..(b + 1) * 20], &corpus.train[start..start + 20]);
            assert_eq!(
                &y[b * 20..(b + 1) * 20],
                &corpus.train[start + 1..start + 21]
            );
        }
    }
}
