"""Local AWS: moto, extended where the deployer depends on behaviour moto does not have.

Layout
  server.py     the WSGI front: routes each request to an extension or to moto, applies injected faults
  protocol.py   what a request is (service, operation) and how each AWS protocol spells an error
  faults.py     the fault registry behind POST/GET/DELETE /_local/faults
  lambda_api.py the Lambda control plane (functions, versions, aliases, update lifecycle, invoke)
  sandbox.py    the Lambda execution environment: a Runtime API emulator and the function's own process
  code.py       where a function's code comes from: a zip's bootstrap, or an image's entrypoint and layers
  registry.py   local ECR's image registry (OCI distribution push/pull) and ECR's events
  events.py     EventBridge delivery to Lambda and Step Functions targets
  cbor.py       CloudWatch over the Smithy RPCv2 CBOR protocol the Rust SDK speaks
  telemetry.py  CloudWatch metrics and Logs written by invocations
"""
