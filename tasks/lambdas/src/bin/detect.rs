//! The `detect` function: the state(s) "Detect unhealthy targets" of statemachine/autoheal.asl.json.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve("detect").await
}
