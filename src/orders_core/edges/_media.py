"""Media types the HTTP binding and the CloudEvents parser both name.

A module of their own so the parser need not import the binding that imports it.
"""

from typing import Final

JSON: Final = "application/json"
PROBLEM_JSON: Final = "application/problem+json"
CE_JSON: Final = "application/cloudevents+json"
CE_BATCH: Final = "application/cloudevents-batch+json"
