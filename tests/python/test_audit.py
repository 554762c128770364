"""The audit log of what the Python client did: `holdpoint audit export --format k8s-audit` writes
events that are valid audit.k8s.io/v1 Events (checked against audit_event.schema.json), and
`holdpoint audit verify` says the chain holds."""
import json
import os
import subprocess
import time

import jsonschema
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "audit_event.schema.json")


def _holdpoint(demo, *args):
    return subprocess.run([demo["binary"], *args, "--config", os.path.join(demo["dir"], "holdpoint.yaml")],
                          capture_output=True, text=True, timeout=60)


def test_k8s_audit_export_is_audit_k8s_io_v1(core, ns, demo):
    core.list_namespaced_config_map(ns)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-audit"), data={"a": "1"})
    core.create_namespaced_config_map(ns, body)
    core.delete_namespaced_config_map("py-audit", ns)
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("py-audit", ns)
    with open(SCHEMA) as f:
        validator = jsonschema.Draft202012Validator(json.load(f))
    # Events of reads are written just after their response: wait for the last one.
    deadline = time.time() + 20
    while True:
        out = _holdpoint(demo, "audit", "export", "--format", "k8s-audit")
        assert out.returncode == 0, out.stderr
        events = [json.loads(line) for line in out.stdout.splitlines()]
        verbs = {(e["verb"], e.get("objectRef", {}).get("name")) for e in events}
        if ("get", "py-audit") in verbs or time.time() > deadline:
            break
        time.sleep(0.2)
    assert ("create", "") in {(e["verb"], e.get("objectRef", {}).get("name", "")) for e in events}
    assert ("delete", "py-audit") in verbs
    assert ("get", "py-audit") in verbs
    for e in events:
        errors = sorted(validator.iter_errors(e), key=lambda err: list(err.path))
        assert not errors, (e, [err.message for err in errors])
        assert e["annotations"]["holdpoint.dev/hash"]
    # A mutation: its RequestReceived event (durable before it was forwarded) has the request,
    # its ResponseComplete event the answer; both share the auditID.
    created = [e for e in events if e["verb"] == "create" and e.get("objectRef", {}).get("resource") == "configmaps"]
    received = [e for e in created if e["stage"] == "RequestReceived"][-1]
    complete = [e for e in created if e["stage"] == "ResponseComplete" and e["auditID"] == received["auditID"]][-1]
    assert received["requestObject"]["data"] == {"a": "1"}
    assert complete["responseStatus"]["code"] == 201
    assert complete["responseObject"]["metadata"]["name"] == "py-audit"
    assert complete["user"]["username"] == "demo-agent"


def test_audit_verify_holds(demo):
    out = _holdpoint(demo, "audit", "verify")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "audit log holds" in out.stdout
