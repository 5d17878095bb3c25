//! The `trigger` function: CloudWatch alarm state changes and the EventBridge schedule become
//! executions of the state machine (deterministic names: target group and minute).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_lambdas::serve_trigger().await
}
