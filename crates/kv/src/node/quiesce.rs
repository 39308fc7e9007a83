//! Quiescing idle ranges: a range with no new log entry for a while stops its Raft ticker
//! on every replica, so a node with thousands of idle ranges sends no heartbeats and wakes
//! for no timers.
//!
//! Each node decides for its own replicas, every half second:
//!
//! - a replica whose log grew since the last look is active: its ticker runs;
//! - a leader quiesces once its log has not grown for `after` and every voter has matched
//!   its last entry (so each knows the commit index as well);
//! - a follower quiesces once its log has not grown for `after`, it applied everything, and
//!   it heard from its leader's node within [`LEADER_SILENCE`] (node-level gossip, one
//!   `Status` call a second, keeps that fresh without Raft heartbeats).
//!
//! A write through a quiesced leader starts its ticker at once; the entry reaches the
//! followers, whose logs grow, so they start theirs at the next look. A quiesced follower
//! whose leader's node falls silent for [`LEADER_SILENCE`] starts its ticker, and its
//! election timer (long expired) makes it campaign. Reads on a quiesced leader whose lease
//! lapsed confirm leadership with one heartbeat round (`Replica::ready`'s read index).
//! The meta range never quiesces: it serves the timestamp oracle and node ids.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use storage::Engine;

use super::{ClusterNode, META_RANGE};

/// A quiesced follower wakes when it has not heard from its leader's node for this long.
pub const LEADER_SILENCE: Duration = Duration::from_millis(2_500);

/// How often replicas are looked at.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// What the loop remembers of a replica: its last log index and when it last changed.
struct Seen {
    last_log: Option<u64>,
    since: Instant,
}

/// Quiesces this node's idle replicas and wakes them, until the node stops.
pub(super) async fn run<E: Engine>(node: Arc<ClusterNode<E>>, after: Duration) {
    let mut tick = tokio::time::interval(LOOK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: HashMap<u64, Seen> = HashMap::new();
    loop {
        tick.tick().await;
        if node.stopped() {
            return;
        }
        let Some(store) = node.store() else {
            continue;
        };
        let me = store.node();
        let live: Vec<u64> = node.peers().live(LEADER_SILENCE);
        let now = Instant::now();
        for replica in store.replicas() {
            let range = replica.desc().id;
            if range == META_RANGE {
                continue;
            }
            let (last_log, leader, applied, caught_up) = {
                let m = replica.raft().metrics();
                let m = m.borrow_watched();
                let last = m.last_log_index;
                let caught_up = m.replication.as_ref().is_some_and(|r| {
                    let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
                    voters.iter().all(|v| {
                        *v == m.id || r.get(v).and_then(|l| l.as_ref()).map(|l| l.index) == last
                    })
                });
                (
                    last,
                    m.current_leader,
                    m.last_applied.as_ref().map(|l| l.index),
                    caught_up,
                )
            };
            let s = seen.entry(range).or_insert(Seen {
                last_log,
                since: now,
            });
            if s.last_log != last_log {
                s.last_log = last_log;
                s.since = now;
                replica.wake();
                continue;
            }
            let leader_heard = leader.is_some_and(|l| l == me || live.contains(&l));
            if replica.is_quiesced() {
                if !leader_heard && replica.wake() {
                    // Its leader's node fell silent: campaign, and do not quiesce again
                    // before the range has had time to elect.
                    tracing::info!(
                        range,
                        ?leader,
                        "waking a quiesced range: its leader is silent"
                    );
                    s.since = now;
                }
                continue;
            }
            if now.duration_since(s.since) < after {
                continue;
            }
            let idle = if leader == Some(me) {
                caught_up
            } else {
                leader_heard && applied == last_log
            };
            if idle {
                replica.quiesce();
            }
        }
        seen.retain(|range, _| store.get(*range).is_some());
    }
}
