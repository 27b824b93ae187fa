//! What every command works with: the stack's names, and AWS clients built once from one SDK config.

use deployer_aws::watch::ExecutionReader;
use deployer_aws::{DynamoLedger, DynamoTargetStore, EcrRegistry, LambdaControlPlane, SfnExecutions};

/// The deployer stack deployctl operates, and its clients.
pub struct Ctx {
    pub stack: String,
    pub targets_table: String,
    pub deployments_table: String,
    aws: Option<Aws>,
}

/// One client per service, shared by the adapters that use it.
pub struct Aws {
    pub sdk: aws_config::SdkConfig,
    pub store: DynamoTargetStore,
    pub ledger: DynamoLedger,
    pub lambda: LambdaControlPlane,
    pub ecr: EcrRegistry,
    pub reader: ExecutionReader,
    sfn: aws_sdk_sfn::Client,
}

impl Ctx {
    /// `with_aws`: false for a command that needs no account (`target validate --offline`), which must not
    /// wait on a region or credentials lookup.
    pub async fn new(stack: String, table: Option<String>, with_aws: bool) -> Ctx {
        let targets_table = table.unwrap_or_else(|| format!("{stack}-targets"));
        let deployments_table = format!("{stack}-deployments");
        let aws = if with_aws { Some(Aws::new(&targets_table, &deployments_table).await) } else { None };
        Ctx { stack, targets_table, deployments_table, aws }
    }

    pub fn aws(&self) -> &Aws {
        self.aws.as_ref().expect("the command was started with its AWS clients")
    }

    pub fn endpoint(&self) -> Option<&str> {
        self.aws.as_ref().and_then(|a| a.sdk.endpoint_url())
    }

    /// The stack's state machine, `<stack>-deploy`.
    pub async fn state_machine(&self) -> anyhow::Result<String> {
        let name = format!("{}-deploy", self.stack);
        self.aws().reader.state_machine_arn(&name).await?.ok_or_else(|| {
            crate::exit::ended(
                crate::exit::Exit::Failed,
                format!(
                    "no deployer stack {stack} in this account and region (no state machine named {name}): name it \
                     with --stack or DEPLOYER_STACK",
                    stack = self.stack
                ),
            )
        })
    }

    pub fn executions(&self, state_machine: &str) -> SfnExecutions {
        SfnExecutions::new(self.aws().sfn.clone(), state_machine)
    }
}

impl Aws {
    async fn new(targets_table: &str, deployments_table: &str) -> Aws {
        let sdk = deployer_aws::step::sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let sfn = aws_sdk_sfn::Client::new(&sdk);
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        Aws {
            store: DynamoTargetStore::new(dynamodb.clone(), targets_table),
            ledger: DynamoLedger::new(dynamodb, deployments_table),
            lambda: LambdaControlPlane::new(aws_sdk_lambda::Client::new(&sdk)),
            ecr: EcrRegistry::new(aws_sdk_ecr::Client::new(&sdk), region),
            reader: ExecutionReader::new(sfn.clone()),
            sfn,
            sdk,
        }
    }
}

/// An execution's ARN from its state machine's ARN and its name.
pub fn execution_arn(state_machine: &str, name: &str) -> String {
    format!("{}:{name}", state_machine.replacen(":stateMachine:", ":execution:", 1))
}
