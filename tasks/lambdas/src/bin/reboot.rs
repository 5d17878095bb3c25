//! The `reboot` function: the state(s) "Reboot instance" of statemachine/autoheal.asl.json.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve("reboot").await
}
