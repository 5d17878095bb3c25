//! autoheal-sim: the simulated fleet of the local demo.
//!
//! - [`scenario`]: the scenario file format (DESIGN.md §5), validated with errors that name the
//!   file, the JSON path and the fix; the built-in set is `docs/examples/`;
//! - [`region`]: a simulated region behind every port, driven by a scenario on the runner's
//!   virtual clock; [`host`]: the raw outputs of a host with given faults;
//! - [`store`]: an in-memory incident store and notifier; [`disk`]: the embedded on-disk store
//!   (redb) under `.autoheal/`.
//!
//! - [`simulate`]: a whole scenario: triggers (alarm, schedule) starting executions of the real
//!   state machine on the virtual clock, or the `asg-replace` baseline, scored against the
//!   scenario's ground truth.

pub mod chaos;
pub mod disk;
pub mod host;
pub mod region;
pub mod scenario;
pub mod simulate;
pub mod store;

pub use disk::DiskStore;
pub use region::{Call, FaultHit, GroupCount, Region};
pub use scenario::{FaultKind, Scenario};
pub use simulate::{PolicyKind, SimOptions, Simulation, simulate};
pub use store::MemoryStore;
