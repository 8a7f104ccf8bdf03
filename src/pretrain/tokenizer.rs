//! The tiny character-level tokenizer of the embedded base model.
//!
//! At about 45 characters per task, a BPE buys nothing (see the feasibility reference), so the
//! vocabulary is one id per character: the special tokens of the compact templates, `\n`, and
//! printable ASCII 32-126. It is saved as a real Hugging Face `tokenizer.json` (a `tokenizers`
//! BPE model with a character vocabulary and **no merges**, the special tokens as added
//! special tokens, and a `Fuse` decoder), so `tokenizers::Tokenizer::from_file` and HF
//! `transformers` load it like any other tokenizer.

use super::error::PretrainError;
use std::path::Path;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::{AddedToken, Tokenizer};

/// Padding (id 0); never trained on.
pub const PAD: &str = "<pad>";
/// Unknown character; never produced for corpus text (tests assert it).
pub const UNK: &str = "<unk>";
/// Starts a program.
pub const PROG: &str = "<prog>";
/// Starts an input (argument text).
pub const IN: &str = "<in>";
/// Starts an output (`repr` text).
pub const OUT: &str = "<out>";
/// Starts the message of an induction task (a short description of the function).
pub const MSG: &str = "<msg>";
/// Ends a sample; the end-of-sequence token.
pub const END: &str = "<end>";

/// The special tokens, in id order (ids 0..=6).
pub const SPECIALS: [&str; 7] = [PAD, UNK, PROG, IN, OUT, MSG, END];

/// The character set after the specials: `\n`, then printable ASCII 32..=126.
pub fn charset() -> impl Iterator<Item = char> {
    std::iter::once('\n').chain((32u8..=126).map(char::from))
}

/// The tokenizer of the tiny model: a `tokenizers::Tokenizer` plus the ids of its specials.
#[derive(Clone)]
pub struct TinyTokenizer {
    inner: Tokenizer,
    unk_id: u32,
    /// Id of [`PAD`].
    pub pad_id: u32,
    /// Id of [`PROG`].
    pub prog_id: u32,
    /// Id of [`IN`].
    pub in_id: u32,
    /// Id of [`OUT`].
    pub out_id: u32,
    /// Id of [`MSG`].
    pub msg_id: u32,
    /// Id of [`END`].
    pub end_id: u32,
}

impl std::fmt::Debug for TinyTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TinyTokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

fn tok_err(e: impl std::fmt::Display) -> PretrainError {
    PretrainError::Tokenizer(e.to_string())
}

impl TinyTokenizer {
    /// Build the tokenizer: specials first (ids 0..=6), then `\n` and printable ASCII.
    pub fn build() -> Result<Self, PretrainError> {
        let vocab: Vocab = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(charset().map(|c| c.to_string()))
            .zip(0u32..)
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, Vec::new())
            .unk_token(UNK.to_string())
            .build()
            .map_err(tok_err)?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_decoder(Some(Fuse::new()));
        let specials: Vec<AddedToken> = SPECIALS
            .iter()
            .map(|s| AddedToken::from(*s, true))
            .collect();
        inner.add_special_tokens(specials).map_err(tok_err)?;
        Self::from_tokenizer(inner)
    }

    /// Wrap a loaded `tokenizers::Tokenizer`, checking that every special token is present.
    pub fn from_tokenizer(inner: Tokenizer) -> Result<Self, PretrainError> {
        let id = |s: &str| {
            inner
                .token_to_id(s)
                .ok_or_else(|| PretrainError::Tokenizer(format!("missing special token `{s}`")))
        };
        Ok(Self {
            unk_id: id(UNK)?,
            pad_id: id(PAD)?,
            prog_id: id(PROG)?,
            in_id: id(IN)?,
            out_id: id(OUT)?,
            msg_id: id(MSG)?,
            end_id: id(END)?,
            inner,
        })
    }

    /// Load a `tokenizer.json` written by [`TinyTokenizer::save`].
    pub fn load(path: &Path) -> Result<Self, PretrainError> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| PretrainError::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::from_tokenizer(inner)
    }

    /// Save as a Hugging Face `tokenizer.json` (pretty-printed).
    pub fn save(&self, path: &Path) -> Result<(), PretrainError> {
        self.inner
            .save(path, true)
            .map_err(|e| PretrainError::Tokenizer(format!("{}: {e}", path.display())))
    }

    /// The underlying `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Number of ids (specials included).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encode text (special tokens written literally, e.g. `<in>`, become their ids). Errors
    /// with [`PretrainError::UnknownChars`] if any character is outside the vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, PretrainError> {
        let enc = self.inner.encode(text, false).map_err(tok_err)?;
        let ids = enc.get_ids();
        if ids.contains(&self.unk_id) {
            let unknown: String = text
                .chars()
                .filter(|c| *c != '\n' && !(' '..='~').contains(c))
                .collect();
            return Err(PretrainError::UnknownChars(unknown));
        }
        Ok(ids.to_vec())
    }

    /// Decode ids to text, special tokens included (so `decode(encode(t)) == t`).
    pub fn decode(&self, ids: &[u32]) -> Result<String, PretrainError> {
        self.inner.decode(ids, false).map_err(tok_err)
    }
}
