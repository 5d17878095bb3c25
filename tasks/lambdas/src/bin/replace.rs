//! The `replace` function: the state(s) "Replace via Auto Scaling" of statemachine/autoheal.asl.json.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve("replace").await
}
