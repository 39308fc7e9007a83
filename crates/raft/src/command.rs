//! The replicated command: a write batch evaluated by the leaseholder.

use serde::{Deserialize, Serialize};
use storage::{Keyspace, WriteBatch};

/// The keyspaces a command may write: a range's replicated data.
const REPLICATED: [Keyspace; 3] = [Keyspace::Mvcc, Keyspace::Locks, Keyspace::Latest];

/// One put (`Some`) or delete (`None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Op {
    keyspace: u8,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

/// A write batch to apply on every replica, in log order, or a split of the range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    ops: Vec<Op>,
    split: Option<Split>,
}

/// Splits a range at `key`: the range keeps the keys below it, and a new range `right`
/// (with the same members) takes the keys from it on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub key: Vec<u8>,
    pub right: u64,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.split {
            Some(s) => write!(f, "split into range {}", s.right),
            None => write!(f, "write batch of {} ops", self.ops.len()),
        }
    }
}

/// A batch that writes outside a range's replicated keyspaces.
#[derive(Debug, thiserror::Error)]
#[error("a replicated command may not write the {0:?} keyspace")]
pub struct NotReplicated(pub Keyspace);

impl Command {
    /// Returns the command that applies `batch`.
    pub fn from_batch(batch: &WriteBatch) -> Result<Command, NotReplicated> {
        let ops = batch
            .ops()
            .iter()
            .map(|op| {
                if !REPLICATED.contains(&op.ks) {
                    return Err(NotReplicated(op.ks));
                }
                Ok(Op {
                    keyspace: op.ks.index() as u8,
                    key: op.key.clone(),
                    value: op.value.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Command { ops, split: None })
    }

    /// Returns the command that splits the range at `key`, the keys from it on going to
    /// the new range `right`.
    pub fn split(key: Vec<u8>, right: u64) -> Command {
        Command {
            ops: Vec::new(),
            split: Some(Split { key, right }),
        }
    }

    /// Returns the split this command makes, if it is one.
    pub fn as_split(&self) -> Option<&Split> {
        self.split.as_ref()
    }

    /// Adds the command's writes to `batch`. A keyspace outside the replicated ones (a
    /// corrupt or foreign entry) is an error, not a silent write elsewhere.
    pub(crate) fn add_to(&self, batch: &mut WriteBatch) -> std::io::Result<()> {
        for op in &self.ops {
            let ks = replicated_keyspace(op.keyspace, "log entry")?;
            match &op.value {
                Some(v) => batch.put(ks, op.key.clone(), v.clone()),
                None => batch.delete(ks, op.key.clone()),
            }
        }
        Ok(())
    }

    /// Returns the keyspaces a command writes (what a snapshot of a range holds).
    pub fn replicated_keyspaces() -> &'static [Keyspace] {
        &REPLICATED
    }
}

/// Returns the replicated keyspace stored as `index` in a log entry or snapshot (`what`);
/// any other keyspace is corrupt or foreign data, never written.
pub(crate) fn replicated_keyspace(index: u8, what: &str) -> std::io::Result<Keyspace> {
    Keyspace::ALL
        .get(usize::from(index))
        .copied()
        .filter(|ks| REPLICATED.contains(ks))
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{what} holds unknown keyspace {index}"),
            )
        })
}
