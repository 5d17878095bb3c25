//! The `quarantine` function: the state(s) "Quarantine target" of statemachine/autoheal.asl.json.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve("quarantine").await
}
