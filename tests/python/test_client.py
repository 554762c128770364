"""The Python `kubernetes` client through the gateway, unchanged."""
import json
import os
import re
import subprocess

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream


def test_list_and_get(core, ns, demo):
    cms = core.list_namespaced_config_map(ns)
    names = [c.metadata.name for c in cms.items]
    if demo["emulator"]:
        assert "web-config" in names
        pod = core.read_namespaced_pod("web-0", ns)
        assert pod.status.phase == "Running"
    all_ns = core.list_config_map_for_all_namespaces()
    assert len(all_ns.items) >= len(cms.items)


def test_create_patch_delete(core, ns):
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm"), data={"a": "1"})
    created = core.create_namespaced_config_map(ns, body)
    assert created.metadata.uid
    patched = core.patch_namespaced_config_map("py-cm", ns, {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    with pytest.raises(ApiException) as conflict:
        core.create_namespaced_config_map(ns, body)
    assert conflict.value.status == 409
    core.delete_namespaced_config_map("py-cm", ns)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("py-cm", ns)
    assert missing.value.status == 404


def test_watch_sees_a_new_object(core, ns):
    w = watch.Watch()
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-watched"), data={"x": "y"})
    )
    seen = False
    for event in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=10):
        if event["object"].metadata.name == "py-watched":
            seen = True
            w.stop()
    core.delete_namespaced_config_map("py-watched", ns)
    assert seen


def test_logs(core, ns, demo):
    if not demo["emulator"]:
        pytest.skip("needs the emulator's seeded pod")
    logs = core.read_namespaced_pod_log("web-0", ns, container="app")
    assert logs.strip()


def test_exec_over_websocket(core, ns, demo):
    if not demo["emulator"]:
        pytest.skip("needs the emulator's seeded pod")
    out = stream(
        core.connect_get_namespaced_pod_exec,
        "web-0",
        ns,
        command=["echo", "hello", "python"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert out.strip() == "hello python"


def test_wrong_token_gets_a_401_status(api):
    good = api.configuration
    cfg = client.Configuration()
    cfg.host = good.host
    cfg.ssl_ca_cert = good.ssl_ca_cert
    cfg.api_key = {"authorization": "Bearer wrong-token"}
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(client.ApiClient(cfg)).list_namespaced_config_map("default")
    assert err.value.status == 401
    assert '"kind":"Status"' in err.value.body.replace(" ", "")
    assert "wrong-token" not in err.value.body


def test_a_held_create_waits_for_a_reviewer_and_is_applied_once(core, ns, demo):
    """A client that does not retry by itself: the 429 message names the approval; after a
    reviewer approves, re-sending the identical request gets the recorded answer."""
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="held-py"), data={"a": "1"})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, body)
    assert err.value.status == 429
    message = json.loads(err.value.body)["message"]
    found = re.search(r"approval (ap-[a-z2-7]{10})", message)
    assert found, message
    assert "holdpoint wait" in message and "never applied twice" in message
    admin = os.path.join(demo["dir"], "admin.kubeconfig")
    subprocess.run(
        [demo["binary"], "approvals", "approve", found.group(1), "--kubeconfig", admin],
        check=True,
        env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
    )
    created = core.create_namespaced_config_map(ns, body)
    assert created.metadata.name == "held-py"
    again = core.create_namespaced_config_map(ns, body)
    assert again.metadata.uid == created.metadata.uid, "applied once, answered twice"
    core.delete_namespaced_config_map("held-py", ns)
