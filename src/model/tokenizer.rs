//! The tokenizer: a thin wrapper over the `tokenizers` crate that speaks [`ModelError`].

use std::collections::HashMap;
use std::path::Path;

use super::error::{ModelError, Result};

/// A text tokenizer (an HF `tokenizer.json`), cheap to clone.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// Loads a `tokenizer.json` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Self { inner })
    }

    /// Wraps an already built `tokenizers::Tokenizer` (e.g. one built from GGUF metadata).
    pub fn from_tokenizers(inner: tokenizers::Tokenizer) -> Self {
        Self { inner }
    }

    /// A word-level tokenizer with `vocab_size` tokens named `<unk>`, `<eos>`, `w2`, `w3`, ...
    /// that splits on whitespace. Meant for random-weight models in tests and benchmarks.
    ///
    /// # Errors
    /// If `vocab_size < 2` or the tokenizer cannot be assembled.
    pub fn synthetic(vocab_size: usize) -> Result<Self> {
        if vocab_size < 2 {
            return Err(ModelError::InvalidInput(format!(
                "synthetic tokenizer needs at least 2 tokens, got {vocab_size}"
            )));
        }
        let mut vocab = HashMap::with_capacity(vocab_size);
        vocab.insert("<unk>".to_string(), 0u32);
        vocab.insert("<eos>".to_string(), 1u32);
        for i in 2..vocab_size {
            vocab.insert(format!("w{i}"), i as u32);
        }
        let model = tokenizers::models::wordlevel::WordLevel::builder()
            .vocab(vocab.into_iter().collect())
            .unk_token("<unk>".to_string())
            .build()
            .map_err(tok_err)?;
        let mut inner = tokenizers::Tokenizer::new(model);
        inner.with_pre_tokenizer(Some(
            tokenizers::pre_tokenizers::whitespace::WhitespaceSplit,
        ));
        inner.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
        Ok(Self { inner })
    }

    /// Writes the tokenizer as `tokenizer.json`-format JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner
            .save(path, false)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))
    }

    /// The tokenizer as `tokenizer.json`-format JSON text.
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(false).map_err(tok_err)
    }

    /// A tokenizer from `tokenizer.json`-format JSON text (what [`Tokenizer::to_json`] writes).
    pub fn from_json(text: &str) -> Result<Self> {
        let inner: tokenizers::Tokenizer = text.parse().map_err(tok_err)?;
        Ok(Self { inner })
    }

    /// Text to token ids; `add_special` adds the template's special tokens (e.g. BOS).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, add_special).map_err(tok_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids to text; `skip_special` drops special tokens.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(tok_err)
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The wrapped `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
