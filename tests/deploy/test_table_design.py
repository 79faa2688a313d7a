"""serverless.yml's table, its stream filter and its index grants follow ``TableDesign``, as
the store and the CDK stack do (the stack reads it; YAML cannot, so this test holds it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orders_aws.item_events import ORDER_PREFIX
from orders_aws.table import DESIGN

yaml = pytest.importorskip("yaml")  # cfn-lint's dependency, in the deploy session

SERVERLESS = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "serverless.yml"


class _Loader(yaml.SafeLoader):  # type: ignore[misc,name-defined]
    """Reads CloudFormation's short tags (!Ref, !GetAtt, !Join...) as plain values."""


def _any_tag(loader: Any, suffix: str, node: Any) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


_Loader.add_multi_constructor("!", _any_tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(SERVERLESS.read_text(), Loader=_Loader)
    return loaded


def test_the_table_definition_is_the_designs(template: dict[str, Any]) -> None:
    table = template["resources"]["Resources"]["OrdersTable"]["Properties"]
    assert {a["AttributeName"] for a in table["AttributeDefinitions"]} == set(DESIGN.key_attributes)
    assert {a["AttributeType"] for a in table["AttributeDefinitions"]} == {"S"}
    assert table["KeySchema"] == [
        {"AttributeName": DESIGN.partition_key, "KeyType": "HASH"},
        {"AttributeName": DESIGN.sort_key, "KeyType": "RANGE"},
    ]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == DESIGN.customer_index
    assert index["KeySchema"] == [
        {"AttributeName": DESIGN.customer_partition_key, "KeyType": "HASH"},
        {"AttributeName": DESIGN.customer_sort_key, "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": DESIGN.ttl_attribute,
        "Enabled": True,
    }
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}


def test_the_relays_stream_filter_keys_on_the_designs_partition_key(
    template: dict[str, Any],
) -> None:
    (stream,) = [e["stream"] for e in template["functions"]["relay"]["events"] if "stream" in e]
    (pattern,) = stream["filterPatterns"]
    assert pattern["dynamodb"]["Keys"] == {DESIGN.partition_key: {"S": [{"prefix": ORDER_PREFIX}]}}


def test_index_grants_name_the_designs_index() -> None:
    text = SERVERLESS.read_text()
    assert f"/index/{DESIGN.customer_index}'" in text
    assert text.count("/index/") == text.count(f"/index/{DESIGN.customer_index}'")
