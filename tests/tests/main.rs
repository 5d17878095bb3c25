//! One integration test binary, a module per feature (zero-to-production layout).

mod chaos;
mod cli;
mod fault_model;
mod fault_table;
mod fuzz;
mod handlers;
mod hostile;
mod layers;
mod notifications;
mod operate;
mod region;
mod simulate;
mod ssm_patterns;
mod statemachine;
