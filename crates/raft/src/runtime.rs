//! The async runtime openraft runs on: tokio, with a random number source that a
//! simulation can seed.
//!
//! openraft draws its election timeouts and first-tick jitter from the runtime's
//! `thread_rng`. On tokio's that is seeded by the OS, so two runs of one simulated scenario
//! elect at different moments even on the same simulated clock. [`seed_thread_rng`] makes
//! the draws on the calling thread follow a seed instead: the in-process cluster's fault
//! scenarios run every replica on their test's one thread (a paused, current-thread
//! runtime), so their elections then replay with the scenario's seed. Threads that were
//! never seeded (every server) draw from the OS as before.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend};
use openraft_rt_tokio::TokioRuntime;
use rand::SeedableRng;
use rand::rngs::SmallRng;

thread_local! {
    /// The next seed of this thread's draws, once [`seed_thread_rng`] was called here.
    static SEED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Makes openraft's random draws on this thread follow `seed` (until seeded again).
pub fn seed_thread_rng(seed: u64) {
    SEED.set(Some(seed));
}

/// SplitMix64: each draw's generator is seeded with the next value of this sequence.
fn next_seed(seed: u64) -> u64 {
    let z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Tokio, delegating everything but [`AsyncRuntime::thread_rng`] (see the module docs).
#[derive(Debug)]
pub struct Runtime(TokioRuntime);

impl AsyncRuntime for Runtime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = <TokioRuntime as AsyncRuntime>::Instant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = SmallRng;
    type Mpsc = <TokioRuntime as AsyncRuntime>::Mpsc;
    type Watch = <TokioRuntime as AsyncRuntime>::Watch;
    type Oneshot = <TokioRuntime as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::Mutex<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> SmallRng {
        match SEED.get() {
            Some(seed) => {
                let next = next_seed(seed);
                SEED.set(Some(next));
                SmallRng::seed_from_u64(next)
            }
            None => rand::make_rng(),
        }
    }

    fn new(threads: usize) -> Self {
        Runtime(TokioRuntime::new(threads))
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.0.block_on(future)
    }
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;

    fn draws() -> Vec<u64> {
        (0..4)
            .map(|_| Runtime::thread_rng().random_range(0..1_000_000))
            .collect()
    }

    #[test]
    fn a_seeded_thread_repeats_its_draws_and_others_do_not_follow() {
        seed_thread_rng(7);
        let first = draws();
        seed_thread_rng(7);
        assert_eq!(draws(), first);
        seed_thread_rng(8);
        assert_ne!(draws(), first);
        // Another thread was never seeded: it draws from the OS.
        let other = std::thread::spawn(|| (draws(), draws())).join().unwrap();
        assert_ne!(other.0, other.1);
    }
}
