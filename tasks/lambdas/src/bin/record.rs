//! The `record` function: the state(s) "Record incident / Record failure" of statemachine/autoheal.asl.json.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve("record").await
}
