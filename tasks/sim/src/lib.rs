//! autoheal-sim: the simulated fleet of the local demo.
//!
//! - [`scenario`]: the scenario file format (DESIGN.md §5), validated with errors that name the
//!   file, the JSON path and the fix; the built-in set is `docs/examples/`;
//! - [`region`]: a simulated region behind every port, driven by a scenario on the runner's
//!   virtual clock; [`host`]: the raw outputs of a host with given faults;
//! - [`store`]: an in-memory incident store and notifier.
//!
//! Still to come (issue 4): the embedded on-disk store, the trigger loop over a whole scenario,
//! the asg-replace baseline, and `autoheal demo` / `simulate`.

pub mod host;
pub mod region;
pub mod scenario;
pub mod store;

pub use region::Region;
pub use scenario::{FaultKind, Scenario};
pub use store::MemoryStore;
