//! The ML service: a classifier trained offline with scikit-learn (`model/train.py`), exported as its
//! parameters (`model/model.json`) and applied here exactly as scikit-learn applies them.
//!
//! # Layout
//! - [`Model`]: the exported StandardScaler + LogisticRegression, loaded and checked once at init.
//! - [`Request`] / [`Response`]: a batch of feature rows in; per row a class, its label and both class
//!   probabilities out, with the model's version.
//! - [`ServiceError`]: what the caller did wrong (`InvalidInput`), named as a 4xx would be.

use serde::{Deserialize, Serialize};

/// More rows than this in one request is refused: a batch larger than that belongs in a batch job.
pub const MAX_ROWS: usize = 256;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    pub format: String,
    pub model_version: String,
    pub features: Vec<String>,
    pub classes: Vec<i64>,
    pub labels: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub coef: Vec<f64>,
    pub intercept: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ServiceError {
    /// The request is wrong; the message says how. (A 4xx.)
    #[error("{0}")]
    InvalidInput(String),
    /// The model file is missing or inconsistent: the service cannot start.
    #[error("model {path}: {message}")]
    BadModel { path: String, message: String },
}

impl ServiceError {
    pub fn kind(&self) -> &'static str {
        match self {
            ServiceError::InvalidInput(_) => "InvalidInput",
            ServiceError::BadModel { .. } => "ModelLoadError",
        }
    }
}

impl Model {
    /// Load and check the exported model.
    pub fn load(path: &str) -> Result<Model, ServiceError> {
        let bad = |message: String| ServiceError::BadModel { path: path.to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        Model::parse(&text).map_err(|e| match e {
            ServiceError::BadModel { message, .. } => bad(message),
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Model, ServiceError> {
        let bad = |message: String| ServiceError::BadModel { path: "(text)".into(), message };
        let m: Model = serde_json::from_str(text).map_err(|e| bad(format!("not a model export: {e}")))?;
        if m.format != "standard-scaler+logistic-regression/v1" {
            return Err(bad(format!("format {:?} is not one this service applies", m.format)));
        }
        let n = m.features.len();
        if n == 0 || m.mean.len() != n || m.scale.len() != n || m.coef.len() != n {
            return Err(bad(format!(
                "{} features but {} means, {} scales, {} coefficients",
                n,
                m.mean.len(),
                m.scale.len(),
                m.coef.len()
            )));
        }
        if m.classes.len() != 2 || m.labels.len() != 2 {
            return Err(bad("a binary classifier has two classes and two labels".into()));
        }
        let finite = m.mean.iter().chain(&m.scale).chain(&m.coef).all(|v| v.is_finite()) && m.intercept.is_finite();
        if !finite || m.scale.contains(&0.0) {
            return Err(bad("parameters must be finite and scales non-zero".into()));
        }
        Ok(m)
    }

    /// P(class 1) for one row, as scikit-learn's predict_proba computes it.
    fn positive_probability(&self, row: &[f64]) -> f64 {
        let logit: f64 = row
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.coef)
            .map(|(((x, mean), scale), coef)| coef * ((x - mean) / scale))
            .sum::<f64>()
            + self.intercept;
        // The numerically stable logistic, as scipy's expit.
        if logit >= 0.0 {
            1.0 / (1.0 + (-logit).exp())
        } else {
            let e = logit.exp();
            e / (1.0 + e)
        }
    }

    pub fn predict(&self, request: &Request) -> Result<Response, ServiceError> {
        request.validate(self.features.len())?;
        let mut out = Response {
            model_version: self.model_version.clone(),
            service_version: std::env::var("SERVICE_VERSION").ok().filter(|v| !v.is_empty()),
            classes: Vec::with_capacity(request.rows.len()),
            labels: Vec::with_capacity(request.rows.len()),
            probabilities: Vec::with_capacity(request.rows.len()),
        };
        for row in &request.rows {
            let p1 = self.positive_probability(row);
            let idx = usize::from(p1 > 0.5);
            out.classes.push(self.classes[idx]);
            out.labels.push(self.labels[idx].clone());
            out.probabilities.push([1.0 - p1, p1]);
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub rows: Vec<Vec<f64>>,
}

impl Request {
    /// Read a request from the event; a malformed one is an InvalidInput saying what is wrong.
    pub fn from_event(event: serde_json::Value) -> Result<Request, ServiceError> {
        serde_json::from_value(event).map_err(|e| {
            ServiceError::InvalidInput(format!(
                "the request must be {{\"rows\": [[<number>, ...], ...]}}: {e} (non-finite numbers such as NaN \
                 are not JSON)"
            ))
        })
    }

    pub fn validate(&self, width: usize) -> Result<(), ServiceError> {
        if self.rows.is_empty() {
            return Err(ServiceError::InvalidInput("the batch is empty: send at least one row".into()));
        }
        if self.rows.len() > MAX_ROWS {
            return Err(ServiceError::InvalidInput(format!(
                "the batch has {} rows; send at most {MAX_ROWS} per request",
                self.rows.len()
            )));
        }
        for (i, row) in self.rows.iter().enumerate() {
            if row.len() != width {
                return Err(ServiceError::InvalidInput(format!(
                    "row {i} has {} features; the model takes {width}",
                    row.len()
                )));
            }
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(ServiceError::InvalidInput(format!("row {i} feature {j} is not a finite number")));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub model_version: String,
    /// The image's build (SERVICE_VERSION), so a caller can tell which deployment answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_version: Option<String>,
    pub classes: Vec<i64>,
    pub labels: Vec<String>,
    /// Per row, [P(class 0), P(class 1)].
    pub probabilities: Vec<[f64; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn model(name: &str) -> Model {
        Model::load(&format!("{}/model/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn golden() -> Value {
        let path = format!("{}/model/golden.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn predictions_match_scikit_learn_on_the_golden_rows() {
        let g = golden();
        let m = model("model.json");
        assert_eq!(m.model_version, g["modelVersion"]);
        let request = Request::from_event(json!({"rows": g["rows"]})).unwrap();
        let out = m.predict(&request).unwrap();
        let tolerance = g["tolerance"].as_f64().unwrap();
        assert_eq!(out.classes, serde_json::from_value::<Vec<i64>>(g["classes"].clone()).unwrap());
        let expected: Vec<[f64; 2]> = serde_json::from_value(g["probabilities"].clone()).unwrap();
        assert!(expected.len() >= 10);
        for (i, (got, want)) in out.probabilities.iter().zip(&expected).enumerate() {
            for k in 0..2 {
                assert!(
                    (got[k] - want[k]).abs() <= tolerance,
                    "row {i} class {k}: {} vs scikit-learn {}",
                    got[k],
                    want[k]
                );
            }
        }
        assert!(out.labels.iter().all(|l| l == "malignant" || l == "benign"));
    }

    #[test]
    fn the_broken_model_loads_but_answers_wrongly() {
        let g = golden();
        let broken = model("model-broken.json");
        let out = broken.predict(&Request::from_event(json!({"rows": g["rows"]})).unwrap()).unwrap();
        let expected: Vec<i64> = serde_json::from_value(g["classes"].clone()).unwrap();
        assert!(out.classes.iter().zip(&expected).all(|(a, b)| a != b), "every class is flipped");
    }

    #[test]
    fn bad_requests_are_refused_with_what_is_wrong() {
        let m = model("model.json");
        let row = vec![1.0; 30];
        let cases: Vec<(&str, Value, &str)> = vec![
            ("not an object", json!([1, 2]), "the request must be"),
            ("unknown field", json!({"rows": [row], "extra": 1}), "unknown field `extra`"),
            ("string feature", json!({"rows": [["a"]]}), "the request must be"),
            ("empty batch", json!({"rows": []}), "the batch is empty"),
            ("too many rows", json!({"rows": vec![row.clone(); MAX_ROWS + 1]}), "send at most 256"),
            ("wrong width", json!({"rows": [row, vec![1.0; 29]]}), "row 1 has 29 features; the model takes 30"),
        ];
        for (what, event, want) in cases {
            let got = Request::from_event(event).and_then(|r| m.predict(&r)).unwrap_err();
            assert_eq!(got.kind(), "InvalidInput", "{what}");
            assert!(got.to_string().contains(want), "{what}: {got}");
        }
        let inf = Request {
            rows: vec![{
                let mut r = vec![1.0; 30];
                r[4] = f64::INFINITY;
                r
            }],
        };
        assert_eq!(m.predict(&inf).unwrap_err().to_string(), "row 0 feature 4 is not a finite number");
    }

    #[test]
    fn inconsistent_model_files_are_refused() {
        let good: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{}/model/model.json", env!("CARGO_MANIFEST_DIR"))).unwrap(),
        )
        .unwrap();
        let mut short = good.clone();
        short["coef"].as_array_mut().unwrap().pop();
        assert!(Model::parse(&short.to_string()).unwrap_err().to_string().contains("29 coefficients"));
        let mut other = good.clone();
        other["format"] = json!("onnx");
        assert!(Model::parse(&other.to_string()).unwrap_err().to_string().contains("not one this service applies"));
        assert!(Model::load("/nonexistent/model.json").unwrap_err().to_string().contains("cannot read it"));
    }
}
