//! Chaos for the simulator (`autoheal simulate --chaos throttle=0.2,task_crash=0.05,…`): what
//! AWS and Lambda do to a healer on a bad day, injected deterministically (a seeded generator).
//!
//! - `throttle=P`: every AWS call (ELB, EC2, Auto Scaling, SSM, DynamoDB) is throttled with
//!   probability P per attempt. The SDK retries a throttled call (standard mode: 3 attempts), so
//!   a call fails with `Throttled` only when all its attempts are throttled; the state machine's
//!   Retry takes it from there.
//! - `task_crash=P`: a task invocation fails as Lambda does, with probability P: a third before
//!   the function runs (`Lambda.ServiceException`, retried), a third after it ran and did its
//!   side effect but its answer was lost (`Lambda.ServiceException`, retried: the case that
//!   needs idempotent tasks), a third a timeout after the side effect (`Sandbox.Timedout`, not
//!   retried: the incident records the failure).
//! - `duplicate_triggers=N`: each start comes N more times at once: the alarm and the schedule
//!   for the same minute (folded by the execution name) and N replays under other names, which
//!   really run beside it (the lease keeps one incident per target).
//! - `vanish=P`: an instance being healed is terminated by someone else mid-heal with
//!   probability P (its Auto Scaling group replaces it).

use std::sync::Mutex;

use serde::Serialize;

/// The chaos of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Chaos {
    pub throttle: f64,
    pub task_crash: f64,
    pub duplicate_triggers: u32,
    pub vanish: f64,
}

impl Chaos {
    /// `throttle=0.2,task_crash=0.05,duplicate_triggers=1,vanish=0.02` (any subset, any order).
    pub fn parse(spec: &str) -> Result<Chaos, String> {
        let mut c = Chaos::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                format!("--chaos {part:?}: expected name=value, e.g. throttle=0.2")
            })?;
            let prob = |v: &str| -> Result<f64, String> {
                match v.parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                    _ => Err(format!(
                        "--chaos {k}={v}: a probability between 0 and 1, e.g. {k}=0.05"
                    )),
                }
            };
            match k {
                "throttle" => c.throttle = prob(v)?,
                "task_crash" => c.task_crash = prob(v)?,
                "vanish" => c.vanish = prob(v)?,
                "duplicate_triggers" => {
                    c.duplicate_triggers =
                        v.parse::<u32>().ok().filter(|n| *n <= 10).ok_or_else(|| {
                            format!("--chaos duplicate_triggers={v}: a whole number from 0 to 10")
                        })?;
                }
                other => {
                    return Err(format!(
                        "--chaos: no chaos called {other:?}; use throttle, task_crash, duplicate_triggers or vanish"
                    ));
                }
            }
        }
        Ok(c)
    }

    pub fn is_none(&self) -> bool {
        *self == Chaos::default()
    }
}

/// What the chaos did in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChaosCounts {
    /// Call attempts throttled (the SDK retried most of them).
    pub throttled_attempts: u64,
    /// Calls that failed with `Throttled` after the SDK's attempts.
    pub throttled_calls: u64,
    pub crashes_before: u64,
    pub crashes_after: u64,
    pub timeouts_after: u64,
    pub duplicate_starts: u64,
    pub vanished: u64,
}

/// A seeded generator (SplitMix64) and the counts, shared by the region and the tasks.
#[derive(Debug)]
pub struct Dice {
    state: Mutex<(u64, ChaosCounts)>,
}

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice {
            state: Mutex::new((seed ^ 0x9e37_79b9_7f4a_7c15, ChaosCounts::default())),
        }
    }

    /// A uniform number in [0, 1).
    pub fn roll(&self) -> f64 {
        let Ok(mut s) = self.state.lock() else {
            return 1.0;
        };
        s.0 = s.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // 53 random bits as a fraction.
        (z >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.roll() < p
    }

    pub fn count(&self, f: impl FnOnce(&mut ChaosCounts)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s.1);
        }
    }

    pub fn counts(&self) -> ChaosCounts {
        self.state.lock().map(|s| s.1).unwrap_or_default()
    }
}

/// The SDK's attempts per call (standard retry mode).
pub const SDK_ATTEMPTS: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_name_the_fix() {
        let c = Chaos::parse("throttle=0.2,task_crash=0.05,duplicate_triggers=1,vanish=0.02")
            .expect("valid");
        assert_eq!(
            c,
            Chaos {
                throttle: 0.2,
                task_crash: 0.05,
                duplicate_triggers: 1,
                vanish: 0.02
            }
        );
        assert!(Chaos::parse("").expect("empty").is_none());
        for (bad, says) in [
            ("throttle", "expected name=value"),
            ("throttle=2", "between 0 and 1"),
            ("throttle=-0.1", "between 0 and 1"),
            ("gremlins=1", "no chaos called"),
            ("duplicate_triggers=x", "whole number"),
        ] {
            let e = Chaos::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn the_dice_are_seeded_and_fair() {
        let (a, b) = (Dice::new(7), Dice::new(7));
        let xs: Vec<f64> = (0..1000).map(|_| a.roll()).collect();
        let ys: Vec<f64> = (0..1000).map(|_| b.roll()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let hits = (0..100_000).filter(|_| a.chance(0.2)).count();
        assert!((19_000..21_000).contains(&hits), "{hits}");
    }
}
