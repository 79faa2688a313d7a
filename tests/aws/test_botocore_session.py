"""Our botocore session: the same services and models as botocore's, without the scan of
every service directory on the way to a client."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import JSONFileLoader, Loader

from orders_aws.botocore_session import PlainJSONFileLoader, ServiceLoader, session
from tests.aws.support import set_fake_env

TYPE = "service-2"


def test_membership_answers_as_botocore_does() -> None:
    ours, theirs = ServiceLoader(), Loader()
    every = theirs.list_available_services(TYPE)
    assert len(every) > 100
    listed = ours.list_available_services(TYPE)
    assert all(name in listed for name in every)
    for name in ("nope", "", ".", "..", "dynamodb/..", "../data/dynamodb", "DYNAMODB", 7):
        assert (name in listed) is (name in every), name


def test_the_full_list_is_botocores_when_read() -> None:
    listed = ServiceLoader().list_available_services(TYPE)
    every = Loader().list_available_services(TYPE)
    assert listed == every
    assert list(listed) == every
    assert len(listed) == len(every)
    assert listed[0] == every[0]
    assert ", ".join(listed) == ", ".join(every)


def test_checking_one_service_lists_one_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    listed: list[str] = []
    real = os.listdir

    def counting(path: Any) -> list[str]:
        listed.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", counting)
    assert "dynamodb" in ServiceLoader().list_available_services(TYPE)
    assert len(listed) == 1
    assert Path(listed[0]).name == "dynamodb"


def test_clients_load_the_real_model() -> None:
    client = session().create_client("dynamodb", region_name="eu-west-1")
    assert client.meta.service_model.service_name == "dynamodb"
    assert client.meta.region_name == "eu-west-1"
    assert "TransactWriteItems" in client.meta.service_model.operation_names


def test_an_unknown_service_is_refused_with_the_known_names() -> None:
    with pytest.raises(UnknownServiceError) as caught:
        session().create_client("no-such-service", region_name="eu-west-1")
    assert "dynamodb" in str(caught.value)


def test_aws_data_path_is_searched_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = tmp_path / "custom" / "2020-01-01"
    model.mkdir(parents=True)
    (model / f"{TYPE}.json").write_text(
        '{"version":"2.0","metadata":{},"operations":{},"shapes":{}}'
    )
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    loader = session().get_component("data_loader")
    assert isinstance(loader, ServiceLoader)
    assert loader.search_paths[0] == str(tmp_path)
    assert "custom" in loader.list_available_services(TYPE)


@pytest.mark.parametrize(
    "name",
    ["endpoints", "partitions", "dynamodb/2012-08-10/service-2", "sqs/2012-11-05/service-2"],
)
def test_data_files_load_as_botocore_loads_them_in_the_same_order(name: str) -> None:
    path = os.path.join(Loader.BUILTIN_DATA_PATH, name)
    ours, theirs = PlainJSONFileLoader().load_file(path), JSONFileLoader().load_file(path)
    assert ours == theirs
    assert json.dumps(ours) == json.dumps(theirs)  # key order too, at every level
    assert type(ours) is dict


def test_a_missing_file_loads_as_none() -> None:
    assert PlainJSONFileLoader().load_file(os.path.join(Loader.BUILTIN_DATA_PATH, "nope")) is None


def test_a_format_we_do_not_know_is_left_to_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PlainJSONFileLoader, "_FORMATS", ())
    path = os.path.join(Loader.BUILTIN_DATA_PATH, "dynamodb/2012-08-10/service-2")
    assert PlainJSONFileLoader().load_file(path) == JSONFileLoader().load_file(path)


def test_our_loader_reads_with_plain_dicts() -> None:
    assert isinstance(ServiceLoader().file_loader, PlainJSONFileLoader)


def test_only_the_dynamodb_client_skips_client_side_parameter_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store builds every DynamoDB call from fixed shapes, which DynamoDB Local checks in
    the contract suite; SQS and EventBridge calls carry callers' content and keep the check
    (decision 0008). A malformed call reaches the wire on the one, not on the other."""
    from botocore.exceptions import ParamValidationError

    from orders_aws.clients import client, make_client

    set_fake_env(monkeypatch)  # a signed request, never sent

    class Sent(Exception):
        pass

    def refuse_to_send(**_: Any) -> None:
        raise Sent

    dynamodb = make_client(region="eu-west-1")
    dynamodb.meta.events.register("before-send", refuse_to_send)
    with pytest.raises(Sent):
        dynamodb.put_item(TableName="t", Item={"pk": {"S": 5}})  # type: ignore[dict-item]
    events = client("events", region="eu-west-1")
    events.meta.events.register("before-send", refuse_to_send)
    with pytest.raises(ParamValidationError):
        events.put_events(Entries="not a list")
