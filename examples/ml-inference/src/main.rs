//! The ML service's Lambda: the model is loaded once at init (a bad model fails the init, so Lambda
//! reports the update as failed), then each invocation classifies a batch of rows.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use ml_inference::{Model, Request, Response, ServiceError};
use serde_json::Value;

#[derive(Debug)]
struct Failure(ServiceError);

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Self {
        Diagnostic { error_type: f.0.kind().to_string(), error_message: f.0.to_string() }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let path = std::env::var("MODEL_PATH").unwrap_or_else(|_| {
        format!("{}/model.json", std::env::var("LAMBDA_TASK_ROOT").unwrap_or_else(|_| "/var/task".into()))
    });
    let model = &Model::load(&path)?;
    tracing::info!(model = %model.model_version, features = model.features.len(), "model loaded");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let request = Request::from_event(event.payload).map_err(Failure)?;
        let response: Response = model.predict(&request).map_err(Failure)?;
        tracing::info!(rows = request.rows.len(), model = %model.model_version, "classified");
        Ok::<_, Failure>(response)
    }))
    .await
}
