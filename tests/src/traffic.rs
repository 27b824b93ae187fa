//! Production traffic through a function's `live` alias while a deployment runs: invocations by executed
//! version, and how many of them failed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use serde_json::json;

pub struct Traffic {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeMap<String, (u64, u64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    /// Invoke `function:live` (the fixture's `{"traffic": true}` event) in a loop, a few ms apart.
    pub fn start(lambda: aws_sdk_lambda::Client, function: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let (s, m) = (stop.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let out = lambda
                    .invoke()
                    .function_name(&function)
                    .qualifier("live")
                    .payload(Blob::new(json!({"traffic": true, "echo": "x"}).to_string()))
                    .send()
                    .await;
                if let Ok(out) = out {
                    let version = out.executed_version().unwrap_or("?").to_string();
                    let mut seen = m.lock().unwrap();
                    let entry = seen.entry(version).or_insert((0, 0));
                    entry.0 += 1;
                    entry.1 += u64::from(out.function_error().is_some());
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        });
        Traffic { stop, seen, task }
    }

    /// Stop, and say what was served: version -> (invocations, errors).
    pub async fn stop(self) -> BTreeMap<String, (u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let seen = self.seen.lock().unwrap().clone();
        seen
    }
}
