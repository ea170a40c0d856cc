"""The Helm chart's values.schema.json; its ``settings`` part is generated from config/settings.py.

``python -m scripts.chart_schema`` rewrites helm/notify/values.schema.json; a unit test checks
the file is what this prints, so a setting added to Settings is settable through the chart's
values (and checked by helm) the day it is added.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from config.settings import Settings

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "helm" / "notify" / "values.schema.json"

# Settings the chart sets itself, and the values that set them; never under ``settings``.
CHART_MANAGED = {
    "kafka_bootstrap": "kafka.bootstrap",
    "broker_flavor": "always kafka (the embedded broker is for development only)",
    "data_dir": "persistence.mountPath",
    "web_port": "web.port",
    "web_enabled": "always true (the probes ask the web server)",
    "apns_key_file": "secrets.apnsKey",
    "fcm_credentials_file": "secrets.fcmServiceAccount",
    "smtp_password": "secrets.smtpPassword",
    "sms_auth_token": "secrets.smsAuthToken",
    "webhook_signing_secret": "secrets.webhookSigningSecret",
    "feedback_token": "secrets.feedbackToken",
    "api_keys": "secrets.apiKeys",
}

# Settings the templates read (cross-checks and the termination grace period).
REQUIRED_SETTINGS = ["partitions", "revoke_drain_seconds"]

STRING = {"type": "string"}
DURATION = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"}
POSITIVE = {"type": "integer", "minimum": 1}
SECONDS = {"type": "number", "minimum": 0}
OBJECT = {"type": "object"}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
LIST_OF_OBJECTS = {"type": "array", "items": {"type": "object"}}


def strict(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        schema["required"] = required
    return schema


def secret_ref(description: str) -> dict[str, Any]:
    return {
        "description": description,
        **strict(
            {
                "secretName": {"type": "string", "description": "existing Secret (empty: none)"},
                "key": {"type": "string", "minLength": 1},
            },
            ["secretName", "key"],
        ),
    }


def probe() -> dict[str, Any]:
    return strict(
        {
            "initialDelaySeconds": {"type": "integer", "minimum": 0},
            "periodSeconds": POSITIVE,
            "timeoutSeconds": POSITIVE,
            "failureThreshold": POSITIVE,
            "successThreshold": POSITIVE,
        }
    )


def settings_schema() -> dict[str, Any]:
    schema = Settings.model_json_schema()
    definitions = schema.get("$defs", {})
    properties: dict[str, Any] = {}
    for name, field in schema["properties"].items():
        if name in CHART_MANAGED:
            continue
        if "$ref" in field:
            # An enum setting (TracingExporter): its choices inline, the schema stays one piece.
            ref = definitions[field["$ref"].rsplit("/", 1)[-1]]
            field = {**{k: v for k, v in ref.items() if k != "title"}, **field}
            del field["$ref"]
        properties[name] = {k: v for k, v in field.items() if k != "title"}
    return {
        "description": "NOTIFY_* settings by field name (config/settings.py)",
        **strict(properties, REQUIRED_SETTINGS),
    }


def values_schema() -> dict[str, Any]:
    scaling_policy = strict(
        {
            "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
            "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
            "policies": {
                "type": "array",
                "items": strict(
                    {
                        "type": {"enum": ["Percent", "Pods"]},
                        "value": POSITIVE,
                        "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
                    },
                    ["type", "value", "periodSeconds"],
                ),
            },
        }
    )
    properties: dict[str, Any] = {
        "image": strict(
            {
                "repository": {"type": "string", "minLength": 1},
                "tag": STRING,
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            },
            ["repository"],
        ),
        "imagePullSecrets": LIST_OF_OBJECTS,
        "nameOverride": STRING,
        "fullnameOverride": STRING,
        "command": {"type": "array", "items": STRING, "minItems": 1},
        "replicas": POSITIVE,
        "createTopics": strict(
            {
                "enabled": {"type": "boolean"},
                "resources": strict({"requests": OBJECT, "limits": OBJECT}),
            },
            ["enabled"],
        ),
        "kafka": strict(
            {
                "bootstrap": {
                    "type": "string",
                    "description": "host:port[,host:port] of a Kafka cluster",
                    "pattern": "^$|^[^,:\\s]+:[0-9]+(,[^,:\\s]+:[0-9]+)*$",
                }
            },
            ["bootstrap"],
        ),
        "settings": settings_schema(),
        "secrets": strict(
            {
                "apnsKey": secret_ref("APNs token key (.p8), mounted as a file"),
                "fcmServiceAccount": secret_ref("FCM service account JSON, mounted as a file"),
                "smtpPassword": secret_ref("NOTIFY_SMTP_PASSWORD"),
                "smsAuthToken": secret_ref("NOTIFY_SMS_AUTH_TOKEN"),
                "webhookSigningSecret": secret_ref("NOTIFY_WEBHOOK_SIGNING_SECRET"),
                "feedbackToken": secret_ref("NOTIFY_FEEDBACK_TOKEN"),
                "apiKeys": secret_ref("NOTIFY_API_KEYS: the HTTP API's keys (JSON list)"),
            }
        ),
        "secretsDir": {"type": "string", "pattern": "^/"},
        "web": strict(
            {
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
            },
            ["port"],
        ),
        "persistence": strict(
            {
                "mountPath": {"type": "string", "pattern": "^/"},
                "size": {"type": "string", "pattern": "^[0-9]+(Ki|Mi|Gi|Ti)$"},
                "storageClassName": STRING,
                "accessModes": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"enum": ["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"]},
                },
                "whenDeleted": {"enum": ["Retain", "Delete"]},
                "whenScaled": {"enum": ["Retain", "Delete"]},
            },
            ["mountPath", "size"],
        ),
        "autoscaling": strict(
            {
                "enabled": {"type": "boolean"},
                "minReplicas": POSITIVE,
                "maxReplicas": POSITIVE,
                "lag": strict(
                    {
                        "metricName": {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
                        "averageValue": POSITIVE,
                        "matchLabels": LABELS,
                    },
                    ["metricName", "averageValue"],
                ),
                "cpu": strict(
                    {
                        "enabled": {"type": "boolean"},
                        "averageUtilization": {"type": "integer", "minimum": 1, "maximum": 100},
                    }
                ),
                "behavior": strict({"scaleUp": scaling_policy, "scaleDown": scaling_policy}),
            },
            ["enabled"],
        ),
        "podDisruptionBudget": strict(
            {"enabled": {"type": "boolean"}, "maxUnavailable": POSITIVE}, ["enabled"]
        ),
        "serviceMonitor": strict(
            {
                "enabled": {"type": "boolean"},
                "interval": DURATION,
                "scrapeTimeout": DURATION,
                "labels": LABELS,
                "bearerTokenSecret": strict(
                    {"name": {"type": "string"}, "key": {"type": "string", "minLength": 1}},
                    ["name", "key"],
                ),
            },
            ["enabled"],
        ),
        "prometheusRule": strict({"enabled": {"type": "boolean"}, "labels": LABELS}, ["enabled"]),
        "probes": strict(
            {"startup": probe(), "liveness": probe(), "readiness": probe()},
            ["startup", "liveness", "readiness"],
        ),
        "termination": strict(
            {"gracePeriodSeconds": POSITIVE, "commitSeconds": SECONDS},
            ["gracePeriodSeconds", "commitSeconds"],
        ),
        "resources": strict({"requests": OBJECT, "limits": OBJECT}),
        "podSecurityContext": OBJECT,
        "securityContext": OBJECT,
        "serviceAccount": strict(
            {"create": {"type": "boolean"}, "name": STRING, "annotations": LABELS}
        ),
        "podLabels": LABELS,
        "podAnnotations": LABELS,
        "extraEnv": LIST_OF_OBJECTS,
        "extraVolumes": LIST_OF_OBJECTS,
        "extraVolumeMounts": LIST_OF_OBJECTS,
        "nodeSelector": LABELS,
        "tolerations": LIST_OF_OBJECTS,
        "affinity": OBJECT,
        # helm may hand a chart a `global` section (parent charts, some helm versions).
        "global": OBJECT,
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "notify chart values",
        **strict(properties, ["image", "kafka", "settings", "autoscaling", "termination"]),
    }


def render() -> str:
    return json.dumps(values_schema(), indent=2) + "\n"


def main() -> None:
    if sys.argv[1:] == ["--print"]:
        print(render(), end="")
        return
    SCHEMA_PATH.write_text(render())


if __name__ == "__main__":
    main()
