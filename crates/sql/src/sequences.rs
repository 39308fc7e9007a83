//! Sequences and row ids.
//!
//! Sequence values are handed out from blocks reserved in their own small transactions,
//! as PostgreSQL's sequences are non-transactional: a value once taken is never handed
//! out again, even if the transaction that took it rolls back. Each node caches a block of
//! values per sequence, so most `nextval` calls touch no storage; values can be out of
//! order across nodes and gaps appear after restarts, as with PostgreSQL's CACHE option.
//!
//! Row ids (the hidden primary key of tables without one) come from the clock: unique
//! on a node and roughly increasing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use base::{Clock, TenantId};
use txn::TxnClient;

use crate::catalog::{SequenceDesc, sequence_key};
use crate::error::{Error, ErrorKind, Result};

/// Values reserved per trip to storage.
const BLOCK: i64 = 64;

#[derive(Clone, Copy)]
struct Block {
    next: i64,
    /// Values up to and including this one are reserved for this node.
    last: i64,
}

/// A node's sequence caches and row-id generator.
pub struct Sequences {
    client: TxnClient,
    clock: std::sync::Arc<dyn Clock>,
    blocks: Mutex<HashMap<u64, Block>>,
    last_rowid: AtomicU64,
    /// This node's id in a cluster (0 on a single node), in the low bits of every row id.
    node: u64,
}

/// Bits of a row id that hold the node id.
const ROWID_NODE_BITS: u32 = 7;

impl Sequences {
    /// Returns an empty cache.
    pub fn new(client: TxnClient, clock: std::sync::Arc<dyn Clock>) -> Self {
        Sequences {
            client,
            clock,
            blocks: Mutex::new(HashMap::new()),
            last_rowid: AtomicU64::new(0),
            node: 0,
        }
    }

    /// Returns an empty cache for node `node` of a cluster (ids 0 to 127), whose row ids
    /// never collide with another node's.
    pub fn for_node(client: TxnClient, clock: std::sync::Arc<dyn Clock>, node: u64) -> Self {
        Sequences {
            node: node & ((1 << ROWID_NODE_BITS) - 1),
            ..Sequences::new(client, clock)
        }
    }

    /// Returns a fresh row id: microseconds since the epoch shifted left by 3 bits plus a
    /// counter, never repeating on this node, then shifted left by 7 bits holding the node
    /// id, so that no two nodes make the same id.
    pub fn row_id(&self) -> i64 {
        let now = self.clock.now_ms().saturating_mul(1000) << 3;
        let mut prev = self.last_rowid.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self.last_rowid.compare_exchange_weak(
                prev,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let id = (next << ROWID_NODE_BITS) | self.node;
                    return (id & (i64::MAX as u64)) as i64;
                }
                Err(p) => prev = p,
            }
        }
    }

    /// Returns the next value of a sequence.
    pub async fn next(&self, tenant: TenantId, seq: &SequenceDesc) -> Result<i64> {
        loop {
            {
                let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(b) = blocks.get_mut(&seq.id) {
                    let within = if seq.increment > 0 {
                        b.next <= b.last
                    } else {
                        b.next >= b.last
                    };
                    if within {
                        let v = b.next;
                        b.next += seq.increment;
                        return Ok(v);
                    }
                }
            }
            let block = self.reserve(tenant, seq).await?;
            self.blocks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(seq.id, block);
        }
    }

    /// Forgets cached values (after setval or a restart of the sequence).
    pub fn forget(&self, seq: u64) {
        self.blocks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&seq);
    }

    /// Reserves the next block of values in its own transaction.
    async fn reserve(&self, tenant: TenantId, seq: &SequenceDesc) -> Result<Block> {
        let key = sequence_key(tenant, seq.id);
        for _ in 0..100 {
            let mut t = self.client.begin().await?;
            let current = match t.get(&key).await? {
                Some(b) => Some(i64::from_be_bytes(
                    b.as_slice()
                        .try_into()
                        .map_err(|_| Error::internal("corrupt sequence value"))?,
                )),
                None => None,
            };
            let first = match current {
                None => seq.start,
                Some(c) => c.checked_add(seq.increment).ok_or_else(|| exhausted(seq))?,
            };
            let out_of_range = |v: i64| v > seq.max || v < seq.min;
            let first = if out_of_range(first) {
                if !seq.cycle {
                    return Err(exhausted(seq));
                }
                if seq.increment > 0 { seq.min } else { seq.max }
            } else {
                first
            };
            let mut last = first;
            for _ in 1..BLOCK {
                match last.checked_add(seq.increment) {
                    Some(n) if !out_of_range(n) => last = n,
                    _ => break,
                }
            }
            t.put(key.clone(), last.to_be_bytes().to_vec())?;
            match t.commit().await {
                Ok(_) => return Ok(Block { next: first, last }),
                Err(e) if e.is_retryable() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::new(
            ErrorKind::SerializationFailure,
            format!(
                "could not reserve values of sequence \"{}\" under contention",
                seq.name
            ),
        ))
    }

    /// Sets a sequence's current value (setval, restart).
    pub async fn set(&self, tenant: TenantId, seq: &SequenceDesc, value: i64) -> Result<()> {
        let mut t = self.client.begin().await?;
        t.put(sequence_key(tenant, seq.id), value.to_be_bytes().to_vec())?;
        t.commit().await?;
        self.forget(seq.id);
        Ok(())
    }
}

fn exhausted(seq: &SequenceDesc) -> Error {
    Error::new(
        ErrorKind::SequenceLimitExceeded,
        format!(
            "nextval: reached maximum value of sequence \"{}\" ({})",
            seq.name, seq.max
        ),
    )
}
