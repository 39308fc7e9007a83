//! Placement: each range's leader brings its replica count up to the replication factor
//! as live nodes become available, and a node that leads more than its share of ranges
//! hands leaderships to caught-up voters that lead fewer.
//!
//! A new replica starts empty on its node (`AddReplica`), catches up as a learner (by
//! snapshot or log), and is promoted once enough learners are caught up to keep the
//! number of voters odd. Only a range's leader changes its membership, one change at a
//! time: each pass handles a range to the end before the next pass looks at it again
//! (openraft issue #1351: overlapping changes of one group can be lost).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ChangeMembers, Instant as _};
use storage::Engine;

use super::quiesce::LEADER_SILENCE;
use super::{ClusterNode, LIVENESS_WINDOW};
use crate::replica::{Replica, Store};
use crate::rpc::{encode, pb};

/// How often placement looks at the ranges.
const INTERVAL: Duration = Duration::from_secs(1);
/// How long a new learner may take to catch up before the pass gives up on it.
const CATCH_UP: Duration = Duration::from_secs(60);
/// Ranges handled at once.
const PARALLEL: usize = 8;
/// Most leaderships one node hands off per pass (each costs its range a quick election).
/// Kept low: with leaders spread, a statement's requests cross nodes more often, which
/// costs more than it gains on a small machine (see the closing note of this step).
const MAX_TRANSFERS: usize = 2;
/// A leadership goes only to a voter that acknowledged the leader within this long: the
/// node-level liveness window is far longer, and a transfer to a node that just died
/// leaves its range without a leader until an election timeout (or forever, if the pass
/// kept handing it over again).
const RECENT_ACK: Duration = Duration::from_secs(1);
/// A leadership handover the target has not completed in this long goes to another voter.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) async fn run<E: Engine>(node: Arc<ClusterNode<E>>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut handovers = HashMap::new();
    loop {
        tick.tick().await;
        if node.stopped() {
            return;
        }
        let (Some(ident), Some(store)) = (node.ident(), node.store().cloned()) else {
            continue;
        };
        let live: BTreeSet<u64> = node.peers.live(LIVENESS_WINDOW).into_iter().collect();
        let replication = ident.replication as usize;
        let work = store.replicas().into_iter().map(|r| {
            let node = node.clone();
            let live = live.clone();
            async move { up_replicate(&node, &r, replication, &live).await }
        });
        let mut work = futures::stream::iter(work).buffer_unordered(PARALLEL);
        while work.next().await.is_some() {}
        let heard: BTreeSet<u64> = node.peers.live(LEADER_SILENCE).into_iter().collect();
        balance_leaders(&store, ident.node_id, &live, &heard, &mut handovers).await;
    }
}

/// Hands some of this node's leaderships to other voters when it leads more than its share
/// of the ranges it holds a replica of (counted from its replicas' view of their leaders).
/// A target must be live, have acknowledged the leader within [`RECENT_ACK`], lead fewer
/// than its share, and have (nearly) the whole log, so the transfer costs one quick
/// election; a node at or under its share gives nothing away, so leaderships never bounce
/// back and forth.
///
/// A leader that is handing over refuses writes and stops heartbeating until the target
/// wins, and quiesced followers would not campaign in its place: a handover the target
/// has not completed within [`TRANSFER_TIMEOUT`] (it died, or never got the message) is
/// handed to another caught-up voter heard from lately, whatever the shares.
async fn balance_leaders<E: Engine>(
    store: &Store<E>,
    me: u64,
    live: &BTreeSet<u64>,
    heard: &BTreeSet<u64>,
    handovers: &mut HashMap<u64, (u64, Instant)>,
) {
    let replicas = store.replicas();
    let metrics: Vec<_> = replicas
        .iter()
        .map(|r| r.raft().metrics().borrow_watched().clone())
        .collect();
    handovers.retain(|range, _| {
        replicas
            .iter()
            .zip(&metrics)
            .any(|(r, m)| r.desc().id == *range && m.current_leader == Some(me))
    });
    for (replica, m) in replicas.iter().zip(&metrics) {
        let range = replica.desc().id;
        let Some((failed, at)) = handovers.get(&range).copied() else {
            continue;
        };
        if at.elapsed() < TRANSFER_TIMEOUT {
            continue;
        }
        let target = caught_up_voters(m, me, 0)
            .into_iter()
            .find(|v| *v != failed && heard.contains(v));
        let Some(target) = target else { continue };
        if replica
            .raft()
            .trigger()
            .transfer_leader(target)
            .await
            .is_ok()
        {
            tracing::warn!(
                range,
                failed,
                target,
                "a leadership handover did not complete: handing it to another voter"
            );
            handovers.insert(range, (target, Instant::now()));
        }
    }
    let is_live = |n: &u64| *n == me || live.contains(n);
    let mut led: BTreeMap<u64, usize> = BTreeMap::new();
    let mut nodes = BTreeSet::new();
    let mut total: usize = 0;
    for m in &metrics {
        nodes.extend(m.membership_config.membership().voter_ids().filter(is_live));
        if let Some(leader) = m.current_leader {
            *led.entry(leader).or_default() += 1;
            total += 1;
        }
    }
    if nodes.len() < 2 {
        return;
    }
    let fair = total.div_ceil(nodes.len());
    let mut moved = 0;
    for (replica, m) in replicas.iter().zip(&metrics) {
        if led.get(&me).copied().unwrap_or(0) <= fair || moved == MAX_TRANSFERS {
            return;
        }
        if m.current_leader != Some(me) {
            continue;
        }
        let target = caught_up_voters(m, me, 16)
            .into_iter()
            .filter(is_live)
            .filter(|v| {
                m.heartbeat
                    .as_ref()
                    .and_then(|h| h.get(v).cloned().flatten())
                    .is_some_and(|t| t.elapsed() < RECENT_ACK)
            })
            .filter(|v| led.get(v).copied().unwrap_or(0) < fair)
            .min_by_key(|v| led.get(v).copied().unwrap_or(0));
        let Some(target) = target else { continue };
        let range = replica.desc().id;
        match replica.raft().trigger().transfer_leader(target).await {
            Ok(()) => {
                tracing::info!(range, target, "handing leadership over");
                handovers.insert(range, (target, Instant::now()));
                *led.entry(me).or_default() -= 1;
                *led.entry(target).or_default() += 1;
                moved += 1;
            }
            Err(e) => tracing::debug!(range, target, "cannot hand leadership over: {e}"),
        }
    }
}

/// Returns the voters other than `me` of the range whose leader's metrics are `m`, whose
/// logs reach within `slack` entries of the leader's last one (none if `m` is not a
/// leader's: it has no replication progress).
fn caught_up_voters(m: &openraft::RaftMetrics<raft::TypeConfig>, me: u64, slack: u64) -> Vec<u64> {
    let (Some(progress), Some(last)) = (&m.replication, m.last_log_index) else {
        return Vec::new();
    };
    m.membership_config
        .membership()
        .voter_ids()
        .filter(|v| *v != me)
        .filter(|v| {
            progress
                .get(v)
                .cloned()
                .flatten()
                .is_some_and(|l| l.index + slack >= last)
        })
        .collect()
}

/// Adds replicas of `replica`'s range if this node leads it and it has fewer than
/// `replication` voters.
async fn up_replicate<E: Engine>(
    node: &ClusterNode<E>,
    replica: &Arc<Replica<E>>,
    replication: usize,
    live: &BTreeSet<u64>,
) {
    let raft = replica.raft();
    let m = raft.metrics().borrow_watched().clone();
    if m.current_leader != Some(m.id) {
        return;
    }
    let membership = m.membership_config.membership().clone();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let mut learners: BTreeSet<u64> = membership.learner_ids().collect();
    if voters.len() >= replication {
        return;
    }
    let range = replica.desc().id;
    // New learners on live nodes that hold no replica yet, up to the replication factor.
    let wanted = replication - voters.len() - learners.len().min(replication - voters.len());
    let candidates: Vec<u64> = live
        .iter()
        .copied()
        .filter(|n| !voters.contains(n) && !learners.contains(n))
        .take(wanted)
        .collect();
    for target in candidates {
        let Some(addr) = node.peers.addr(target) else {
            continue;
        };
        let Ok(mut client) = node.peers.client(target, &addr.addr) else {
            continue;
        };
        let req = pb::AddReplicaRequest {
            header: Some(node.peers.header_to(target)),
            desc: encode(&replica.desc()),
        };
        if let Err(e) = client.add_replica(req).await {
            tracing::debug!(range, target, "cannot create a replica: {}", e.message());
            continue;
        }
        match tokio::time::timeout(
            CATCH_UP,
            raft.add_learner(target, BasicNode::new(addr.addr.clone()), true),
        )
        .await
        {
            Ok(Ok(_)) => {
                tracing::info!(range, target, "added a learner");
                learners.insert(target);
            }
            Ok(Err(e)) => {
                tracing::debug!(range, target, "cannot add a learner: {e}");
                return;
            }
            Err(_) => {
                tracing::info!(range, target, "learner still catching up");
                return;
            }
        }
    }
    // Promote learners that are live, keeping the number of voters odd.
    let ready: Vec<u64> = learners
        .iter()
        .copied()
        .filter(|n| live.contains(n))
        .collect();
    let mut target_voters = (voters.len() + ready.len()).min(replication);
    if target_voters.is_multiple_of(2) {
        target_voters -= 1;
    }
    if target_voters <= voters.len() {
        return;
    }
    let promote: BTreeSet<u64> = ready
        .into_iter()
        .take(target_voters - voters.len())
        .collect();
    match raft
        .change_membership(ChangeMembers::AddVoterIds(promote.clone()), false)
        .await
    {
        Ok(_) => tracing::info!(range, ?promote, "promoted learners to voters"),
        Err(e) => tracing::debug!(range, "cannot promote learners: {e}"),
    }
}
