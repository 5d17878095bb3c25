//! The `restart_service` function: the state(s) "Restart service" of statemachine/autoheal.asl.json.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve("restart_service").await
}
