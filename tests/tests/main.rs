//! One integration test binary, a module per feature (zero-to-production layout).

mod fault_model;
mod fault_table;
mod statemachine;
