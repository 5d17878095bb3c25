//! The `decide` function: the state(s) "Decide" of statemachine/autoheal.asl.json.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve("decide").await
}
