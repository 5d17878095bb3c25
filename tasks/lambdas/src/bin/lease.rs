//! The `lease` function: the state(s) "Acquire lease / Release lease" of statemachine/autoheal.asl.json.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve("lease").await
}
