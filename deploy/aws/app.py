"""CDK v2 app: ``cdk synth``/``cdk deploy`` from deploy/aws (``cdk.json`` names this file), or
``python3 app.py`` there.

Synthesizes offline, with no credentials: the stack has no lookups and the environment is
left account/region-agnostic. Build the Lambda bundle first (``python -m deploy.aws.bundle``).
Context that cannot make a safe stack (no ``jwtIssuer``/``jwtAudience`` with the default JWT
authorizer) stops here with a message saying what to pass, not a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository root, for `deploy.aws.stack`

import aws_cdk as cdk  # noqa: E402
from aws_cdk import aws_lambda as lambda_  # noqa: E402

from deploy.aws.settings import SettingsError, StackSettings  # noqa: E402
from deploy.aws.stack import OrdersStack  # noqa: E402


def main() -> None:
    app = cdk.App(outdir=os.environ.get("CDK_OUTDIR", str(HERE / "cdk.out")))
    try:
        settings = StackSettings.from_context(app.node)
    except SettingsError as error:
        sys.exit(f"orders-core: {error}")
    default_bundle = HERE.parents[1] / "dist" / f"orders-lambda-{settings.architecture}.zip"
    bundle = Path(app.node.try_get_context("bundle") or default_bundle)
    if not bundle.is_file():
        sys.exit(
            f"no Lambda bundle at {bundle}: run `python -m deploy.aws.bundle "
            f"--arch {settings.architecture}` first"
        )
    OrdersStack(
        app,
        f"OrdersCore-{settings.stage}",
        code=lambda_.Code.from_asset(str(bundle)),
        settings=settings,
        description="orders-core: DynamoDB, Lambda, HTTP API, SQS and EventBridge",
    )
    app.synth()


if __name__ == "__main__":
    main()
