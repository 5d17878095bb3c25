//! The `cleanup` function: the state(s) "Clean up disk" of statemachine/autoheal.asl.json.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve("cleanup").await
}
