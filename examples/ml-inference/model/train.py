"""Train the ML service's model offline and export it, with golden payloads for the tests and the smoke test.

    python examples/ml-inference/model/train.py          # writes model.json, model-broken.json, golden.json here
    python examples/ml-inference/model/train.py --check  # re-trains and fails if the committed files differ

The model is scikit-learn's StandardScaler + LogisticRegression on the breast cancer data set that ships
inside scikit-learn (569 rows, 30 features; no download). The export holds the scaler's mean and scale and
the classifier's coefficients and intercept, which the Rust service applies exactly as scikit-learn does:
p(class 1) = sigmoid(coef . ((x - mean) / scale) + intercept).

model-broken.json is the same model with its coefficients negated: it loads and answers, but wrongly, as a
mismatched model shipped by mistake would. golden.json holds held-out rows with scikit-learn's own classes
and probabilities.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
GOLDEN_ROWS = 12


def train() -> dict[str, dict]:
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=7, stratify=data.target
    )
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0))
    pipeline.fit(x_train, y_train)
    scaler, clf = pipeline.named_steps["standardscaler"], pipeline.named_steps["logisticregression"]
    accuracy = float(pipeline.score(x_test, y_test))

    params = {
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "coef": clf.coef_[0].tolist(),
        "intercept": float(clf.intercept_[0]),
    }
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    model = {
        "format": "standard-scaler+logistic-regression/v1",
        "modelVersion": f"breast-cancer-logreg-{digest}",
        "dataset": "scikit-learn load_breast_cancer",
        "features": [str(f) for f in data.feature_names],
        "classes": [int(c) for c in clf.classes_],
        "labels": [str(data.target_names[c]) for c in clf.classes_],
        **params,
        "trainedWith": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        "testAccuracy": round(accuracy, 4),
    }
    broken = dict(
        model,
        coef=[-c for c in model["coef"]],
        intercept=-model["intercept"],
        modelVersion=model["modelVersion"] + "-broken",
    )

    rows = x_test[:GOLDEN_ROWS]
    golden = {
        "modelVersion": model["modelVersion"],
        "rows": rows.tolist(),
        "classes": [int(c) for c in pipeline.predict(rows)],
        "probabilities": pipeline.predict_proba(rows).tolist(),
        "tolerance": 1e-9,
    }
    return {"model.json": model, "model-broken.json": broken, "golden.json": golden}


def close(a, b, tol: float = 1e-9) -> bool:
    """Equal, with floats within `tol` (another BLAS may round the last bits differently)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(
            close(a[k], b[k], tol) for k in a if k not in ("trainedWith", "modelVersion")
        )
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return a == b


def main() -> None:
    files = train()
    if "--check" in sys.argv:
        stale = [n for n, doc in files.items() if not close(doc, json.loads((HERE / n).read_text()))]
        if stale:
            raise SystemExit(f"committed {', '.join(stale)} differ from what train.py produces: run it and commit")
        print(f"model files match a fresh training ({files['model.json']['modelVersion']})")
        return
    for name, doc in files.items():
        (HERE / name).write_text(json.dumps(doc, indent=1) + "\n")
    model = files["model.json"]
    print(f"trained {model['modelVersion']}: test accuracy {model['testAccuracy']}; wrote {', '.join(files)}")


if __name__ == "__main__":
    main()
