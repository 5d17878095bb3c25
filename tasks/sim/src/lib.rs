//! autoheal-sim: the simulated fleet of the local demo.
//!
//! Today: [`scenario`], the scenario file format (DESIGN.md §5) with validation whose errors
//! name the file, the JSON path and the fix, and the built-in set under `docs/examples/`.
//! Next (issue 4): the simulated region behind the ports of `autoheal-core`, the fault model as
//! host state, and the virtual clock shared with the ASL runner.

pub mod scenario;

pub use scenario::{FaultKind, Scenario};
