//! [`LogGroups`] over CloudWatch Logs: the function's log group, created if missing, with the spec's
//! retention.

use deployer_core::ports::{LogGroups, Result};

use crate::errors::{to_deploy_error, Call};

const LOGS: &str = "CloudWatch Logs";

#[derive(Debug, Clone)]
pub struct CloudWatchLogGroups {
    client: aws_sdk_cloudwatchlogs::Client,
}

impl CloudWatchLogGroups {
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        CloudWatchLogGroups { client: aws_sdk_cloudwatchlogs::Client::new(sdk) }
    }
}

impl LogGroups for CloudWatchLogGroups {
    async fn retention(&self, group: &str) -> Result<Option<Option<u32>>> {
        let out =
            self.client.describe_log_groups().log_group_name_prefix(group).send().await.map_err(|e| {
                to_deploy_error(e, Call { service: LOGS, operation: "DescribeLogGroups", resource: group })
            })?;
        Ok(out
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(group))
            .map(|g| g.retention_in_days().map(|d| d.max(0) as u32)))
    }

    async fn create(&self, group: &str) -> Result<()> {
        match self.client.create_log_group().log_group_name(group).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_already_exists_exception()) => Ok(()),
            Err(e) => Err(to_deploy_error(e, Call { service: LOGS, operation: "CreateLogGroup", resource: group })),
        }
    }

    async fn set_retention(&self, group: &str, days: u32) -> Result<()> {
        self.client.put_retention_policy().log_group_name(group).retention_in_days(days as i32).send().await.map_err(
            |e| to_deploy_error(e, Call { service: LOGS, operation: "PutRetentionPolicy", resource: group }),
        )?;
        Ok(())
    }
}
