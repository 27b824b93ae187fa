"""python -m localaws serve --port 4566 --state-dir .local-aws"""

import argparse
import os
from pathlib import Path

from .server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="localaws", description="Local AWS: moto with the deployer's extensions.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve every AWS service on one endpoint")
    s.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_AWS_PORT", "4566")))
    s.add_argument("--state-dir", type=Path, default=Path(".local-aws"))
    s.add_argument("--region", default="us-east-1")
    s.add_argument(
        "--lambda-update-delay",
        type=float,
        default=float(os.environ.get("LOCAL_AWS_LAMBDA_UPDATE_DELAY", "1.0")),
        help="seconds a Lambda update stays InProgress (default 1)",
    )
    s.add_argument(
        "--metric-lag",
        type=float,
        default=float(os.environ.get("LOCAL_AWS_METRIC_LAG_SECONDS", "60")),
        help="seconds before a CloudWatch datapoint is visible (default 60, as on AWS)",
    )
    args = parser.parse_args()
    serve(args.port, args.state_dir, args.region, args.lambda_update_delay, args.metric_lag)


if __name__ == "__main__":
    main()
