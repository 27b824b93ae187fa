//! [`Telemetry`] over CloudWatch: one GetMetricData call per version reads its invocations, errors and p99
//! duration under the alias (dimensions FunctionName, Resource=<function>:<alias>, ExecutedVersion) and the
//! alias's throttles (FunctionName, Resource: a throttled request executes no version, so Lambda publishes
//! Throttles without ExecutedVersion), and DescribeAlarms the gates' alarms.

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, StateValue};
use deployer_core::ids::{AliasName, FunctionName};
use deployer_core::model::{AlarmState, VersionStats};
use deployer_core::ports::{Result, Telemetry};

use crate::errors::{to_deploy_error, Call};

const CLOUDWATCH: &str = "CloudWatch";
const METRICS: [(&str, &str, &str); 4] =
    [("inv", "Invocations", "Sum"), ("err", "Errors", "Sum"), ("thr", "Throttles", "Sum"), ("p99", "Duration", "p99")];

#[derive(Debug, Clone)]
pub struct CloudWatchTelemetry {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchTelemetry {
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        CloudWatchTelemetry { client: aws_sdk_cloudwatch::Client::new(sdk) }
    }
}

fn dim(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

impl Telemetry for CloudWatchTelemetry {
    async fn version_stats(
        &self,
        function: &FunctionName,
        alias: &AliasName,
        version: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<VersionStats> {
        // One period covering the whole window (CloudWatch may still split it in two at a period boundary:
        // counts are summed, the p99 taken as the worse of the two).
        let start_s = start_ms.div_euclid(1000);
        let end_s = (end_ms + 999).div_euclid(1000).max(start_s + 1);
        let period = ((end_s - start_s + 59) / 60 * 60).max(60) as i32;
        let by_alias = vec![dim("FunctionName", function.as_str()), dim("Resource", &format!("{function}:{alias}"))];
        let mut by_version = by_alias.clone();
        by_version.push(dim("ExecutedVersion", version));
        let queries: Vec<MetricDataQuery> = METRICS
            .iter()
            .map(|(id, name, stat)| {
                let dims = if *name == "Throttles" { by_alias.clone() } else { by_version.clone() };
                let metric =
                    Metric::builder().namespace("AWS/Lambda").metric_name(*name).set_dimensions(Some(dims)).build();
                MetricDataQuery::builder()
                    .id(*id)
                    .metric_stat(MetricStat::builder().metric(metric).period(period).stat(*stat).build())
                    .return_data(true)
                    .build()
            })
            .collect();
        let resource = format!("{function}:{alias} version {version}");
        let out = self
            .client
            .get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time(DateTime::from_secs(start_s))
            .end_time(DateTime::from_secs(end_s))
            .send()
            .await
            .map_err(|e| {
                to_deploy_error(e, Call { service: CLOUDWATCH, operation: "GetMetricData", resource: &resource })
            })?;
        let mut stats = VersionStats::default();
        for r in out.metric_data_results() {
            let values = r.values();
            let sum = values.iter().sum::<f64>().max(0.0).round() as u64;
            match r.id() {
                Some("inv") => stats.invocations = sum,
                Some("err") => stats.errors = sum,
                Some("thr") => stats.throttles = sum,
                Some("p99") => stats.p99_ms = values.iter().copied().reduce(f64::max),
                _ => {}
            }
        }
        Ok(stats)
    }

    async fn alarms(&self, names: &[String]) -> Result<Vec<AlarmState>> {
        let out = self.client.describe_alarms().set_alarm_names(Some(names.to_vec())).send().await.map_err(|e| {
            to_deploy_error(e, Call { service: CLOUDWATCH, operation: "DescribeAlarms", resource: &names.join(",") })
        })?;
        Ok(out
            .metric_alarms()
            .iter()
            .map(|a| AlarmState {
                name: a.alarm_name().unwrap_or_default().to_string(),
                state: a.state_value().map(StateValue::as_str).unwrap_or("INSUFFICIENT_DATA").to_string(),
                reason: a.state_reason().unwrap_or_default().to_string(),
            })
            .chain(out.composite_alarms().iter().map(|a| AlarmState {
                name: a.alarm_name().unwrap_or_default().to_string(),
                state: a.state_value().map(StateValue::as_str).unwrap_or("INSUFFICIENT_DATA").to_string(),
                reason: a.state_reason().unwrap_or_default().to_string(),
            }))
            .collect())
    }
}
