//! Per-example training accuracy per epoch, in the format of 1-shot RLVR's
//! `acc_step_500.json`: a JSON object `{"<example index>": [accuracy of epoch 1, epoch 2, ...]}`.
//!
//! Any RLVR run over a dataset can record one: per epoch, count each example's correct samples
//! in an [`EpochTally`], then [`AccuracyHistory::close_epoch`] appends `correct / total` to each
//! example's list. Key order is preserved on load and save (the paper's ranking breaks score ties
//! by file order, since Python's `sorted` is stable).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::oneshot::OneShotError;

/// Accuracy history of every example, in insertion (file) order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccuracyHistory {
    entries: Vec<(String, Vec<f64>)>,
    position: HashMap<String, usize>,
}

impl AccuracyHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no example has been recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The accuracies of example `index`, oldest epoch first.
    pub fn get(&self, index: &str) -> Option<&[f64]> {
        self.position
            .get(index)
            .map(|&i| self.entries[i].1.as_slice())
    }

    /// All examples with their accuracies, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[f64])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Appends one epoch's accuracy (in `[0, 1]`) to example `index` (created if new).
    pub fn record(&mut self, index: impl Into<String>, accuracy: f64) -> Result<(), OneShotError> {
        let index = index.into();
        if !(0.0..=1.0).contains(&accuracy) {
            return Err(OneShotError::BadAccuracy {
                index,
                value: accuracy,
            });
        }
        match self.position.get(&index) {
            Some(&i) => self.entries[i].1.push(accuracy),
            None => {
                self.position.insert(index.clone(), self.entries.len());
                self.entries.push((index, vec![accuracy]));
            }
        }
        Ok(())
    }

    /// Appends `correct / total` of every example seen in `tally` (one epoch), in index order
    /// of first appearance in the tally.
    pub fn close_epoch(&mut self, tally: EpochTally) -> Result<(), OneShotError> {
        for (index, (correct, total)) in tally.order.into_iter().zip(tally.counts) {
            self.record(index, f64::from(correct) / f64::from(total))?;
        }
        Ok(())
    }

    /// Parses the JSON format.
    pub fn from_json_str(s: &str) -> Result<Self, OneShotError> {
        serde_json::from_str(s).map_err(|source| OneShotError::Json {
            path: "<string>".into(),
            source,
        })
    }

    /// The JSON format, indented by 4 spaces like the paper's file.
    pub fn to_json_string(&self) -> String {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        // Serializing strings and finite f64 into a Vec<u8> cannot fail (accuracies are checked
        // to be in [0, 1] on insertion).
        if self.serialize(&mut ser).is_err() {
            return String::from("{}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Reads a history file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, OneShotError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| OneShotError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| OneShotError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the history file (creating or replacing it).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), OneShotError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json_string()).map_err(|source| OneShotError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

impl Serialize for AccuracyHistory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for AccuracyHistory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AccuracyHistory;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping example indices to lists of accuracies")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut h = AccuracyHistory::new();
                while let Some((k, v)) = map.next_entry::<String, Vec<f64>>()? {
                    if h.position.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate index `{k}`")));
                    }
                    h.position.insert(k.clone(), h.entries.len());
                    h.entries.push((k, v));
                }
                Ok(h)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// Correct/total sample counts per example during one epoch.
#[derive(Debug, Clone, Default)]
pub struct EpochTally {
    order: Vec<String>,
    counts: Vec<(u32, u32)>,
    slot: BTreeMap<String, usize>,
}

impl EpochTally {
    /// An empty tally.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one scored sample of example `index`.
    pub fn add(&mut self, index: &str, correct: bool) {
        let i = match self.slot.get(index) {
            Some(&i) => i,
            None => {
                self.slot.insert(index.to_string(), self.order.len());
                self.order.push(index.to_string());
                self.counts.push((0, 0));
                self.order.len() - 1
            }
        };
        self.counts[i].0 += u32::from(correct);
        self.counts[i].1 += 1;
    }

    /// `(correct, total)` of example `index` so far.
    pub fn get(&self, index: &str) -> Option<(u32, u32)> {
        self.slot.get(index).map(|&i| self.counts[i])
    }
}
