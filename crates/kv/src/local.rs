//! The single-node key-value service: MVCC commands on one storage engine.

use std::sync::Arc;

use async_trait::async_trait;
use base::Clock;
use mvcc::Span;
use storage::{Engine, GroupCommit, WriteBatch};

use crate::KvService;
use crate::api::{RangeDesc, Request, Response};
use crate::error::Result;
use crate::eval::{Evaluator, Log};
use crate::router::{RangeDirectory, RangeInfo, StaticDirectory};
use crate::tso::TimestampOracle;

/// Configuration of a [`LocalKv`].
#[derive(Clone, Debug, Default)]
pub struct LocalKvConfig {
    /// Keys at which the key space is divided into ranges. A single node serves them all;
    /// the division decides which transactions commit in one phase, so tests use it to
    /// exercise two-phase commits.
    pub split_keys: Vec<Vec<u8>>,
}

/// The log of a single-node store: batches go straight to group commit.
struct GroupCommitLog<E: Engine> {
    commit: Arc<GroupCommit<E>>,
}

#[async_trait]
impl<E: Engine> Log for GroupCommitLog<E> {
    async fn ready(&self) -> Result<()> {
        Ok(())
    }

    async fn append(&self, batch: WriteBatch, durable: bool) -> Result<()> {
        let ticket = self.commit.write(&batch)?;
        if durable {
            self.commit.wait_async(ticket).await?;
        }
        Ok(())
    }
}

/// Serves key-value requests from one node's storage engine.
pub struct LocalKv<E: Engine> {
    eval: Evaluator<E, GroupCommitLog<E>>,
    /// The division of the key space (no replicas: this node serves every range).
    ranges: StaticDirectory,
}

impl<E: Engine> LocalKv<E> {
    /// Serves `commit`'s engine, taking one-phase commit timestamps from `tso`.
    pub fn new(
        commit: Arc<GroupCommit<E>>,
        tso: Arc<dyn TimestampOracle>,
        clock: Arc<dyn Clock>,
        config: LocalKvConfig,
    ) -> Self {
        let ranges = RangeDesc::tile(&config.split_keys)
            .into_iter()
            .map(|desc| RangeInfo {
                desc,
                replicas: Vec::new(),
            })
            .collect();
        let ranges = StaticDirectory::new(ranges).expect("split keys tile the key space");
        let engine = commit.engine().clone();
        LocalKv {
            eval: Evaluator::new(engine, GroupCommitLog { commit }, tso, clock),
            ranges,
        }
    }

    /// Returns the engine.
    pub fn engine(&self) -> &Arc<E> {
        self.eval.log().commit.engine()
    }

    /// Returns the group commit in front of the engine.
    pub fn group_commit(&self) -> &Arc<GroupCommit<E>> {
        &self.eval.log().commit
    }
}

#[async_trait]
impl<E: Engine> KvService for LocalKv<E> {
    async fn send(&self, req: Request) -> Result<Response> {
        if let Request::PessimisticLock { wait_ms, .. } = req {
            return self
                .eval
                .locking(wait_ms, || self.eval.execute(req.clone()))
                .await;
        }
        self.eval.execute(req).await
    }

    async fn range_of(&self, key: &[u8]) -> Result<RangeDesc> {
        Ok(self.ranges.lookup(key)?.desc)
    }

    async fn ranges(&self, span: &Span) -> Result<Vec<RangeDesc>> {
        Ok(self
            .ranges
            .overlapping(span)?
            .into_iter()
            .map(|r| r.desc)
            .collect())
    }
}
