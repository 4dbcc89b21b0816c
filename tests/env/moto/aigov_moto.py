"""moto's server, extended with what aigov needs and moto lacks.

* AWS Budgets: UpdateBudget, UpdateNotification, the subscriber calls (Create/Update/Delete
  Subscriber, DescribeSubscribersForNotification) and resource tags (TagResource,
  UntagResource, ListTagsForResource, ResourceTags on CreateBudget), implemented on moto's own
  budgets backend so that `POST /moto-api/reset` and `/moto-api/data.json` see them.
* CloudWatch Logs: AssociateKmsKey and DisassociateKmsKey on a log group (moto keeps the key
  given at creation but has no call to change it).
* CloudWatch over the Smithy RPC-v2 CBOR protocol that current AWS SDKs (aws-sdk-cloudwatch,
  botocore) speak: each CBOR request is translated to the awsJson 1.0 protocol moto already
  serves, and the JSON answer back to CBOR, guided by botocore's model of the operation so
  that timestamps and blobs take their CBOR forms.
* Bedrock: DeleteModelInvocationLoggingConfiguration removes the configuration and
  GetModelInvocationLoggingConfiguration then answers `{}`, as AWS does (moto kept an empty
  `loggingConfig` after a delete, and answered `"loggingConfig": null` before any Put).
* SNS: a failed http/https delivery (an unreachable webhook) no longer fails Publish with a 500;
  as in AWS, delivery is separate from publishing, so the other subscriptions still receive it.

Run: python aigov_moto.py --port 15000 (binds 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import sys
import uuid
from typing import Any, Callable, Iterable

import botocore.session
import cbor2
from moto.bedrock.models import BedrockBackend
from moto.bedrock.responses import BedrockResponse
from moto.budgets.exceptions import NotFoundException
from moto.budgets.models import Budget, Notification
from moto.budgets.responses import BudgetsResponse
from moto.logs.exceptions import ResourceNotFoundException as LogsNotFound
from moto.logs.responses import LogsResponse
from moto.sns.models import Subscription
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple
from werkzeug.wrappers import Request

# --------------------------------------------------------------------------- Budgets


def _budget(self: BudgetsResponse, name: str | None = None) -> Budget:
    account_id = self._get_param("AccountId")
    name = name or self._get_param("BudgetName")
    budget = self.backend.budgets[account_id].get(name)
    if budget is None:
        raise NotFoundException(f"Unable to find budget: {name} - the budget doesn't exist.")
    return budget


def _notification(self: BudgetsResponse, budget: Budget, key: str = "Notification") -> Notification:
    wanted = self._get_param(key)
    for notification in budget.notifications:
        if _same_notification(notification.details, wanted):
            return notification
    raise NotFoundException("Unable to find notification - the notification doesn't exist.")


def _same_notification(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("NotificationType", "ComparisonOperator", "Threshold", "ThresholdType")
    return all(_norm(a.get(k)) == _norm(b.get(k)) for k in keys)


def _norm(value: Any) -> Any:
    if isinstance(value, (int, float)):
        return float(value)
    if value is None:
        return "PERCENTAGE"  # ThresholdType's default
    return value


def update_budget(self: BudgetsResponse) -> str:
    new = self._get_param("NewBudget")
    budget = _budget(self, new.get("BudgetName"))
    keep = {k: budget.budget[k] for k in ("TimePeriod",) if k in budget.budget and k not in new}
    budget.budget = {**new, **keep}
    budget.budget["LastUpdatedTime"] = dt.datetime.now(dt.timezone.utc).timestamp()
    return json.dumps({})


def update_notification(self: BudgetsResponse) -> str:
    budget = _budget(self)
    notification = _notification(self, budget, "OldNotification")
    notification.details = self._get_param("NewNotification")
    return json.dumps({})


def create_subscriber(self: BudgetsResponse) -> str:
    notification = _notification(self, _budget(self))
    subscriber = self._get_param("Subscriber")
    if subscriber not in notification.subscribers:
        notification.subscribers.append(subscriber)
    return json.dumps({})


def delete_subscriber(self: BudgetsResponse) -> str:
    notification = _notification(self, _budget(self))
    subscriber = self._get_param("Subscriber")
    if subscriber not in notification.subscribers:
        raise NotFoundException("Unable to find subscriber - the subscriber doesn't exist.")
    notification.subscribers.remove(subscriber)
    return json.dumps({})


def update_subscriber(self: BudgetsResponse) -> str:
    notification = _notification(self, _budget(self))
    old, new = self._get_param("OldSubscriber"), self._get_param("NewSubscriber")
    if old not in notification.subscribers:
        raise NotFoundException("Unable to find subscriber - the subscriber doesn't exist.")
    notification.subscribers[notification.subscribers.index(old)] = new
    return json.dumps({})


def describe_subscribers_for_notification(self: BudgetsResponse) -> str:
    notification = _notification(self, _budget(self))
    return json.dumps({"Subscribers": notification.subscribers})


def _tags(self: BudgetsResponse) -> dict[str, dict[str, str]]:
    return self.backend.__dict__.setdefault("aigov_tags", {})


def _arn_budget(self: BudgetsResponse, arn: str) -> None:
    # arn:aws:budgets::ACCOUNT:budget/NAME
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("budget/"):
        raise NotFoundException(f"Unable to find resource {arn}")
    if parts[5][len("budget/"):] not in self.backend.budgets[parts[4]]:
        raise NotFoundException(f"Unable to find resource {arn}")


def tag_resource(self: BudgetsResponse) -> str:
    arn = self._get_param("ResourceARN")
    _arn_budget(self, arn)
    tags = _tags(self).setdefault(arn, {})
    for tag in self._get_param("ResourceTags", []):
        tags[tag["Key"]] = tag["Value"]
    return json.dumps({})


def untag_resource(self: BudgetsResponse) -> str:
    arn = self._get_param("ResourceARN")
    _arn_budget(self, arn)
    tags = _tags(self).setdefault(arn, {})
    for key in self._get_param("ResourceTagKeys", []):
        tags.pop(key, None)
    return json.dumps({})


def list_tags_for_resource(self: BudgetsResponse) -> str:
    arn = self._get_param("ResourceARN")
    _arn_budget(self, arn)
    tags = _tags(self).get(arn, {})
    return json.dumps({"ResourceTags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]})


_moto_create_budget = BudgetsResponse.create_budget
_moto_delete_budget = BudgetsResponse.delete_budget


def create_budget(self: BudgetsResponse) -> str:
    result = _moto_create_budget(self)
    tags = self._get_param("ResourceTags")
    if tags:
        arn = f"arn:aws:budgets::{self._get_param('AccountId')}:budget/{self._get_param('Budget')['BudgetName']}"
        _tags(self)[arn] = {t["Key"]: t["Value"] for t in tags}
    return result


def delete_budget(self: BudgetsResponse) -> str:
    result = _moto_delete_budget(self)
    _tags(self).pop(f"arn:aws:budgets::{self._get_param('AccountId')}:budget/{self._get_param('BudgetName')}", None)
    return result


for _fn in (update_budget, update_notification, create_subscriber, delete_subscriber, update_subscriber,
            describe_subscribers_for_notification, tag_resource, untag_resource, list_tags_for_resource,
            create_budget, delete_budget):
    setattr(BudgetsResponse, _fn.__name__, _fn)

# --------------------------------------------------------------------------- CloudWatch Logs


def _log_group(self: LogsResponse) -> Any:
    name = self._get_param("logGroupName")
    group = self.logs_backend.groups.get(name)
    if group is None:
        raise LogsNotFound("The specified log group does not exist.")
    return group


def associate_kms_key(self: LogsResponse) -> str:
    _log_group(self).kms_key_id = self._get_param("kmsKeyId")
    return ""


def disassociate_kms_key(self: LogsResponse) -> str:
    _log_group(self).kms_key_id = None
    return ""


for _fn in (associate_kms_key, disassociate_kms_key):
    setattr(LogsResponse, _fn.__name__, _fn)

# --------------------------------------------------------------------------- Bedrock


def delete_model_invocation_logging_configuration(self: BedrockBackend) -> None:
    self.model_invocation_logging_configuration = None


def get_model_invocation_logging_configuration(self: BedrockResponse) -> str:
    config = self.bedrock_backend.get_model_invocation_logging_configuration()
    return json.dumps({"loggingConfig": config} if config else {})


BedrockBackend.delete_model_invocation_logging_configuration = delete_model_invocation_logging_configuration
BedrockResponse.get_model_invocation_logging_configuration = get_model_invocation_logging_configuration

# --------------------------------------------------------------------------- SNS

_deliver = Subscription.publish


def _publish_without_failing_on_delivery(self: Subscription, *args: Any, **kwargs: Any) -> None:
    try:
        _deliver(self, *args, **kwargs)
    except Exception as e:  # requests' connection errors, DNS failures
        if self.protocol not in ("http", "https"):
            raise
        print(f"SNS: delivery to {self.endpoint} failed (Publish still succeeds, as in AWS): {e}",
              file=sys.stderr, flush=True)


Subscription.publish = _publish_without_failing_on_delivery

# --------------------------------------------------------------------------- CloudWatch CBOR

CBOR_PREFIX = "/service/GraniteServiceVersion20100801/operation/"
_cloudwatch = botocore.session.get_session().get_service_model("cloudwatch")


def _cbor_to_json(value: Any) -> Any:
    """A decoded CBOR request value as awsJson expects it."""
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, cbor2.CBORTag) and value.tag == 1:
        return float(value.value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _cbor_to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cbor_to_json(v) for v in value]
    return value


def _json_to_cbor(value: Any, shape: Any) -> Any:
    """An awsJson response value in its CBOR form, following the botocore shape."""
    if value is None or shape is None:
        return value
    kind = shape.type_name
    if kind == "timestamp":
        seconds = value if isinstance(value, (int, float)) else dt.datetime.fromisoformat(str(value)).timestamp()
        return cbor2.CBORTag(1, float(seconds))
    if kind == "blob":
        return base64.b64decode(value)
    if kind == "structure":
        return {k: _json_to_cbor(v, shape.members.get(k)) for k, v in value.items()}
    if kind == "list":
        return [_json_to_cbor(v, shape.member) for v in value]
    if kind == "map":
        return {k: _json_to_cbor(v, shape.value) for k, v in value.items()}
    if kind in ("integer", "long"):
        return int(value)
    if kind in ("float", "double"):
        return float(value)
    return value


class CborBridge:
    """WSGI middleware: RPC-v2 CBOR CloudWatch calls in, awsJson 1.0 to moto, CBOR out."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(CBOR_PREFIX):
            return self.app(environ, start_response)
        operation = path[len(CBOR_PREFIX):]
        raw = Request(environ).get_data()
        try:
            decoded = cbor2.loads(raw) if raw else {}
        except Exception as error:  # noqa: BLE001 - any undecodable body is the caller's error
            return self._error(start_response, 400, "SerializationException", f"request body is not CBOR: {error}")
        body = json.dumps(_cbor_to_json(decoded or {})).encode()
        inner = dict(environ)
        inner.update({
            "PATH_INFO": "/",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_AMZ_TARGET": f"GraniteServiceVersion20100801.{operation}",
            "wsgi.input": __import__("io").BytesIO(body),
        })
        inner.pop("HTTP_SMITHY_PROTOCOL", None)
        inner.pop("HTTP_TRANSFER_ENCODING", None)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda _: None

        chunks = b"".join(self.app(inner, capture))
        status = int(captured["status"].split()[0])
        try:
            payload = json.loads(chunks) if chunks.strip() else {}
        except ValueError:
            return self._error(start_response, 500, "InternalFailure", chunks.decode(errors="replace")[:500])
        if status >= 300:
            code = str(payload.get("__type", "InternalFailure")).split("#")[-1]
            message = payload.get("message") or payload.get("Message") or ""
            extra = [(k, v) for k, v in captured["headers"] if k.lower() == "x-amzn-query-error"]
            return self._error(start_response, status, code, message, extra)
        try:
            shape = _cloudwatch.operation_model(operation).output_shape
        except Exception:  # noqa: BLE001 - an operation botocore does not know
            return self._error(start_response, 400, "UnknownOperationException", f"unknown operation {operation}")
        return self._reply(start_response, status, _json_to_cbor(payload, shape) if shape else {})

    @staticmethod
    def _reply(start_response: Callable[..., Any], status: int, value: Any,
               extra: list[tuple[str, str]] | None = None) -> list[bytes]:
        data = cbor2.dumps(value)
        headers = [
            ("Content-Type", "application/cbor"),
            ("Content-Length", str(len(data))),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ] + (extra or [])
        start_response(f"{status} {'OK' if status < 300 else 'Error'}", headers)
        return [data]

    def _error(self, start_response: Callable[..., Any], status: int, code: str, message: str,
               extra: list[tuple[str, str]] | None = None) -> list[bytes]:
        body = {"__type": f"com.amazonaws.cloudwatch#{code}", "message": message}
        return self._reply(start_response, status, body, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=15000)
    args = parser.parse_args()
    app = CborBridge(DomainDispatcherApplication(create_backend_app))
    print(f"aigov moto listening on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
