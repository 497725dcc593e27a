//! The extracts committed in `fixtures/data` (what a bare clone's tests read): they load with
//! the same loaders as the official files, hold what `fixtures/README.md` says, and start with
//! the same records as the offline copies where those are present.

use levelset_data::testing::{fixture_data_dir, real_data_dir};
use levelset_data::{NUM_CLASSES, count_mnist, load_mnist, load_ptb};

#[test]
fn the_mnist_extract_loads_with_the_official_loader() {
    let split = load_mnist(&fixture_data_dir().join("mnist")).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (1000, 700));
    assert_eq!(
        count_mnist(&fixture_data_dir().join("mnist")).unwrap(),
        (1000, 700)
    );
    for set in [&split.train, &split.test] {
        assert_eq!((set.channels, set.height, set.width), (1, 28, 28));
        assert!(set.labels.iter().all(|&l| (l as usize) < NUM_CLASSES));
        // Every digit occurs: a real extract, not a constant.
        for class in 0..NUM_CLASSES as u8 {
            assert!(set.labels.contains(&class), "digit {class} missing");
        }
        assert!(set.images.contains(&255) && set.images.contains(&0));
    }
    if let Some(real) = real_data_dir() {
        let full = load_mnist(&real.join("mnist")).unwrap();
        let n = 1000 * 784;
        assert_eq!(split.train.images[..], full.train.images[..n]);
        assert_eq!(split.train.labels[..], full.train.labels[..1000]);
        assert_eq!(split.test.images[..], full.test.images[..700 * 784]);
    }
}

#[test]
fn the_ptb_extract_tokenizes_as_the_full_text() {
    let dir = fixture_data_dir().join("ptb");
    let corpus = load_ptb(&dir.join("ptb.valid.txt"), &dir.join("ptb.test.txt")).unwrap();
    assert!(corpus.train.len() >= 2_600, "{}", corpus.train.len());
    assert!(corpus.heldout.len() >= 2_600, "{}", corpus.heldout.len());
    assert!(corpus.vocab.len() > 500, "{}", corpus.vocab.len());
    if let Some(real) = real_data_dir() {
        let text = std::fs::read_to_string(real.join("ptb/ptb.valid.txt")).unwrap();
        let extract = std::fs::read_to_string(dir.join("ptb.valid.txt")).unwrap();
        assert!(
            text.starts_with(&extract),
            "the extract is the text's first lines"
        );
    }
}
