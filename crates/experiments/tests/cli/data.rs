//! `levelset data fetch` and `data check` end to end, against a local HTTP server, and the
//! error a run gives when its data set is missing.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use levelset_data::catalog::{Dataset, RemoteFile};
use tempfile::TempDir;

use crate::common::{Run, fail_with, succeed};

/// A server on the loopback address that answers every request with `body`; its base URL.
fn serve_everything(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .and_then(|()| stream.write_all(&body));
        }
    });
    base
}

/// MNIST's training images as the catalog pins them.
fn mnist_train_images() -> RemoteFile {
    Dataset::Mnist
        .sources()
        .iter()
        .map(|source| source.file)
        .find(|file| file.name == "train-images-idx3-ubyte.gz")
        .expect("the catalog pins MNIST's training images")
}

/// `data fetch mnist` into `dir` from `mirror` alone, which must fail naming each of `needles`.
fn fetch_mnist_fails(dir: &Path, mirror: &str, needles: &[&str]) -> Run {
    fail_with(
        [
            "data",
            "fetch",
            "mnist",
            "--dir",
            dir.to_str().unwrap(),
            "--mirror",
            mirror,
            "--no-default-mirrors",
        ],
        needles,
    )
}

/// Asserts that a failed fetch left nothing in `dir/mnist`, not even a temporary file.
fn assert_nothing_left(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir.join("mnist"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind in mnist/: {left:?}");
}

/// A file of the pinned size passes the size checks, so its content reaches the checksum.
#[test]
fn a_tampered_mnist_file_is_refused_with_both_hashes_and_nothing_left() {
    let pinned = mnist_train_images();
    let tampered = vec![0x5a; pinned.size as usize];
    let mirror = serve_everything(tampered.clone());
    let dir = TempDir::new().unwrap();
    let run = fetch_mnist_fails(
        dir.path(),
        &mirror,
        &[pinned.name, "checksum mismatch", pinned.digest.hex()],
    );
    let elsewhere = TempDir::new().unwrap();
    let served = elsewhere.path().join("served");
    std::fs::write(&served, &tampered).unwrap();
    let sha = levelset_data::fetch::sha256_file(&served).unwrap();
    assert!(
        run.stderr.contains(&sha),
        "found hash {sha} in: {}",
        run.stderr
    );
    assert_nothing_left(dir.path());
}

/// A length other than the pinned size is refused as soon as the mirror announces it.
#[test]
fn an_mnist_file_of_another_size_is_refused_naming_both_sizes_and_nothing_left() {
    let pinned = mnist_train_images();
    let mirror = serve_everything(b"not the MNIST training images".to_vec());
    let dir = TempDir::new().unwrap();
    fetch_mnist_fails(
        dir.path(),
        &mirror,
        &[
            pinned.name,
            "announces 29 bytes",
            &format!("pinned at {} bytes", pinned.size),
        ],
    );
    assert_nothing_left(dir.path());
}

#[test]
fn fetch_rejects_unknown_sets_and_non_http_mirrors() {
    fail_with(
        ["data", "fetch", "imagenet"],
        &["unknown data set 'imagenet'", "mnist, cifar10, ptb or all"],
    );
    fail_with(
        ["data", "fetch", "ptb", "--mirror", "ftp://example.org/"],
        &["--mirror ftp://example.org/", "http"],
    );
}

#[test]
fn check_reports_files_counts_and_checksums() {
    let fixtures = levelset_data::testing::fixture_data_dir();
    let run = succeed(["data", "check", "--dir", fixtures.to_str().unwrap()]);
    for needle in [
        "1000 train + 700 test images: subset",
        "train-images-idx3-ubyte.gz: present, not the official file (SHA-256 differs)",
        "ptb.train.txt: missing",
        "cifar10",
        "levelset data fetch cifar10 --dir",
    ] {
        assert!(run.stdout.contains(needle), "{needle:?} in: {}", run.stdout);
    }
}

/// A CIFAR-10 folder holding batches and a manifest of the official archive that lists no
/// member: `data check` counts the batches but does not call them intact, and says which
/// member the manifest lacks.
#[test]
fn check_names_the_member_an_unpacked_archive_manifest_lacks() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("cifar10");
    std::fs::create_dir(&folder).unwrap();
    // One record each: a label and 32 x 32 x 3 pixels.
    let record = [vec![3u8], vec![128u8; 32 * 32 * 3]].concat();
    for batch in ["data_batch_1.bin", "test_batch.bin"] {
        std::fs::write(folder.join(batch), &record).unwrap();
    }
    let archive = Dataset::Cifar10.sources()[0].file;
    std::fs::write(
        folder.join(format!(".{}.sha256", archive.name)),
        format!(
            "# {} {} {}\n",
            archive.name,
            archive.digest.algorithm(),
            archive.digest.hex()
        ),
    )
    .unwrap();
    let run = succeed(["data", "check", "--dir", dir.path().to_str().unwrap()]);
    for needle in [
        "files: not intact",
        "does not list data_batch_1.bin",
        "checksums unknown",
        "1 train + 1 test images: subset",
    ] {
        assert!(run.stdout.contains(needle), "{needle:?} in: {}", run.stdout);
    }
    assert!(!run.stdout.contains("members intact"), "{}", run.stdout);
}

#[test]
fn a_missing_data_set_names_the_files_and_the_fetch_command() {
    let empty = TempDir::new().unwrap();
    let out = TempDir::new().unwrap();
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/mnist-quick.toml");
    fail_with(
        [
            "train".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--level".as_ref(),
            "0.5".as_ref(),
            "--out".as_ref(),
            out.path().join("a").as_os_str(),
            "--data-dir".as_ref(),
            empty.path().as_os_str(),
        ],
        &[
            "train-images-idx3-ubyte",
            &format!("levelset data fetch mnist --dir {}", empty.path().display()),
        ],
    );
}

#[test]
fn a_held_out_set_too_small_for_the_level_is_warned_about() {
    let out = TempDir::new().unwrap();
    let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let text = std::fs::read_to_string(configs.join("mnist-quick.toml"))
        .unwrap()
        .replace("test_limit = 1000", "test_limit = 5");
    let config = crate::common::write(out.path(), "tiny-test.toml", &text);
    let data = levelset_data::testing::real_or_fixture_data_dir();
    // An untrained net is above a test error of 0.5 almost surely; 1e9 trains nothing.
    let run = succeed([
        "train".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--level".as_ref(),
        "1e9".as_ref(),
        "--out".as_ref(),
        out.path().join("a").as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    assert!(
        !run.stderr.contains("fewer than 10 items"),
        "{}",
        run.stderr
    );
    let run = succeed([
        "train".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--level".as_ref(),
        "0.9".as_ref(),
        "--out".as_ref(),
        out.path().join("b").as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    assert!(
        run.stderr.contains("measured on 5 items") && run.stderr.contains("fewer than 10 items"),
        "{}",
        run.stderr
    );
}
