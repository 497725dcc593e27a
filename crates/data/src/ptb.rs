//! Word-level Penn Treebank (Mikolov's preprocessed text), read as Zaremba et al. do: split
//! on whitespace, `<eos>` after every line.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::files::read_bytes;

/// The longest text read, 12 times Penn Treebank's largest file (ptb.train.txt, 5.1 MB). A
/// text has no header to say how long it is, so a gzipped one is inflated no further than this.
pub const MAX_TEXT_BYTES: u64 = 64 << 20;

pub const EOS: &str = "<eos>";
pub const UNK: &str = "<unk>";

/// Word <-> id map. Ids are ordered by descending training frequency, ties alphabetically,
/// so the same training text always yields the same ids (hash-map order never leaks out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    ids: HashMap<String, u32>,
    unk: u32,
    eos: u32,
}

impl Vocab {
    /// Builds the vocabulary of `tokens`; `<eos>` and `<unk>` are always included (with
    /// frequency 0 when absent, hence at the end).
    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for t in tokens {
            *counts.entry(t).or_default() += 1;
        }
        counts.entry(EOS).or_default();
        counts.entry(UNK).or_default();
        let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
        ranked.sort_unstable_by_key(|&(word, count)| (Reverse(count), word));

        let words: Vec<String> = ranked.into_iter().map(|(w, _)| w.to_owned()).collect();
        let ids: HashMap<String, u32> = words.iter().cloned().zip(0..).collect();
        Vocab {
            unk: ids[UNK],
            eos: ids[EOS],
            words,
            ids,
        }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Always false (`<eos>` and `<unk>` are always present); exists for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn id(&self, word: &str) -> Option<u32> {
        self.ids.get(word).copied()
    }

    /// # Panics
    /// If `id >= self.len()`, like slice indexing.
    pub fn word(&self, id: u32) -> &str {
        &self.words[id as usize]
    }

    pub fn unk_id(&self) -> u32 {
        self.unk
    }

    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// Ids of `tokens`, words outside the vocabulary mapped to `<unk>`; also returns how
    /// many were.
    pub fn encode<'a>(&self, tokens: impl IntoIterator<Item = &'a str>) -> (Vec<u32>, usize) {
        let mut unknown = 0;
        let ids = tokens
            .into_iter()
            .map(|t| {
                self.id(t).unwrap_or_else(|| {
                    unknown += 1;
                    self.unk
                })
            })
            .collect();
        (ids, unknown)
    }
}

/// A tokenized training text, its vocabulary, and a held-out text encoded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    pub vocab: Vocab,
    pub train: Vec<u32>,
    pub heldout: Vec<u32>,
    /// Held-out tokens absent from the training vocabulary (encoded as `<unk>`).
    pub heldout_unknown: usize,
}

/// Reads a training and a held-out text (plain or gzipped); the vocabulary comes from the
/// training text only, so held-out perplexities are not flattered by unseen words.
pub fn load_ptb(train: &Path, heldout: &Path) -> Result<Corpus> {
    let train_bytes = read_bytes(train, MAX_TEXT_BYTES)?;
    let train_tokens = tokenize(train, &train_bytes)?;
    let heldout_bytes = read_bytes(heldout, MAX_TEXT_BYTES)?;
    let heldout_tokens = tokenize(heldout, &heldout_bytes)?;

    let vocab = Vocab::from_tokens(train_tokens.iter().copied());
    let (train_ids, _) = vocab.encode(train_tokens);
    let (heldout_ids, heldout_unknown) = vocab.encode(heldout_tokens);
    if heldout_unknown > 0 {
        // With the official ptb.train.txt this never fires (its vocabulary covers the other
        // files); with a reduced training text it explains the extra <unk> mass.
        tracing::warn!(
            count = heldout_unknown,
            file = %heldout.display(),
            "{heldout_unknown} held-out tokens are not in the training vocabulary and were mapped to {UNK}"
        );
    }
    Ok(Corpus {
        vocab,
        train: train_ids,
        heldout: heldout_ids,
        heldout_unknown,
    })
}

/// Whitespace-separated words of each line followed by `<eos>`. A final newline does not
/// start another line, so a file ending in `\n` gives exactly Zaremba's token stream.
fn tokenize<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<&'a str>> {
    // Editors on Windows start UTF-8 files with a byte-order mark; it is not part of a word.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut tokens = Vec::new();
    let mut words = 0;
    for (index, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = std::str::from_utf8(line).map_err(|_| {
            DataError::format(
                path,
                "UTF-8 text",
                format!("invalid UTF-8 on line {}", index + 1),
            )
        })?;
        let before = tokens.len();
        tokens.extend(line.split_whitespace());
        words += tokens.len() - before;
        tokens.push(EOS);
    }
    if words == 0 {
        return Err(DataError::format(
            path,
            "at least one word",
            "only whitespace",
        ));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_frequency_then_alphabet() {
        let vocab = Vocab::from_tokens("b a c a b d a".split(' '));
        let order: Vec<&str> = (0..vocab.len() as u32).map(|i| vocab.word(i)).collect();
        assert_eq!(order, ["a", "b", "c", "d", EOS, UNK]);
        assert_eq!(vocab.id("c"), Some(2));
        assert_eq!(vocab.id("zzz"), None);
        assert_eq!((vocab.eos_id(), vocab.unk_id()), (4, 5));
    }

    #[test]
    fn tokenize_appends_eos_per_line_and_handles_crlf() {
        let path = Path::new("t.txt");
        let tokens = tokenize(path, b" a b \r\n\nc\n").unwrap();
        assert_eq!(tokens, ["a", "b", EOS, EOS, "c", EOS]);
        assert_eq!(tokenize(path, b"x").unwrap(), ["x", EOS]);
    }

    #[test]
    fn tokenize_names_line_of_bad_utf8() {
        let err = tokenize(Path::new("bad.txt"), b"ok\nfine\nbad \xff here\n").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Format { .. }));
        assert!(msg.contains("bad.txt") && msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_word() {
        let tokens = tokenize(Path::new("t"), b"\xEF\xBB\xBFthe cat\n").unwrap();
        assert_eq!(tokens, ["the", "cat", EOS]);
    }

    #[test]
    fn whitespace_only_text_is_rejected() {
        let err = tokenize(Path::new("blank.txt"), b" \n\n").unwrap_err();
        assert!(matches!(err, DataError::Format { .. }));
    }

    #[test]
    fn encode_counts_unknown_words() {
        let vocab = Vocab::from_tokens(["a", "b"]);
        let (ids, unknown) = vocab.encode(["b", "x", "a", "y"]);
        assert_eq!(unknown, 2);
        assert_eq!(
            ids,
            [
                vocab.id("b").unwrap(),
                vocab.unk_id(),
                vocab.id("a").unwrap(),
                vocab.unk_id()
            ]
        );
    }
}
