//! The `notify` function: the state(s) "Notify / Wait for approval" of statemachine/autoheal.asl.json.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve("notify").await
}
