//! The `diagnose` function: the state(s) "Diagnose through SSM" of statemachine/autoheal.asl.json.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve("diagnose").await
}
