"""Masking with the Python `kubernetes` client (issue 5): every way the client reads a secret
value gets it masked, checked on the raw bytes the client received (`_preload_content=False`),
and the client still decodes every answer."""
import base64
import json
import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

SECRET_PW = "CnryPySecret4Vd8"
URL_PW = "CnryPyUrl7Hq2"
ENV_PW = "CnryPyEnv3Ks9"
CANARIES = [
    SECRET_PW,
    base64.b64encode(SECRET_PW.encode()).decode(),
    URL_PW,
    ENV_PW,
]
MASKED = "[MASKED]"
DATA_MASKED = base64.b64encode(MASKED.encode()).decode()
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def assert_no_canary(vector, data):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    for canary in CANARIES:
        assert canary not in text, f"{vector}: canary {canary} reached the client: {text[:2000]}"


@pytest.fixture(scope="module")
def seeded(api, demo):
    """Canary objects, created through the gateway by the agent (the suite's policy lets its
    writes pass)."""
    ns = "demo" if demo["emulator"] else "default"
    core = client.CoreV1Api(api)
    created = core.create_namespaced_secret(
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="mask-py-secret"),
            string_data={"password": SECRET_PW, "username": "app"},
        ),
    )
    # the answer to the create is masked too
    assert created.data["password"] == DATA_MASKED
    core.create_namespaced_config_map(
        ns,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="mask-py-config"),
            data={"DATABASE_URL": f"postgres://app:{URL_PW}@db/app", "LOG_LEVEL": "info"},
        ),
    )
    core.create_namespaced_pod(
        ns,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="mask-py-pod"),
            spec=client.V1PodSpec(
                containers=[
                    client.V1Container(
                        name="app",
                        image="registry.example/app:1",
                        args=["--print-env"],
                        env=[client.V1EnvVar(name="DB_PASSWORD", value=ENV_PW)],
                    )
                ]
            ),
        ),
    )
    yield core
    for delete in (
        lambda: core.delete_namespaced_secret("mask-py-secret", ns),
        lambda: core.delete_namespaced_config_map("mask-py-config", ns),
        lambda: core.delete_namespaced_pod("mask-py-pod", ns),
    ):
        try:
            delete()
        except ApiException:
            pass


def raw(api, path, accept="application/json", query=None, headers=None):
    """GET through the client's own transport and authentication; returns (status, headers,
    bytes as received, after urllib3's transfer decoding)."""
    header_params = {"Accept": accept}
    header_params.update(headers or {})
    params = api.param_serialize(
        "GET",
        path,
        query_params=query or [],
        header_params=header_params,
        auth_settings=["BearerToken"],
    )
    resp = api.call_api(*params)
    body = resp.read()
    return resp.status, resp.getheaders(), body


def test_read_secret(seeded, api, ns):
    secret = seeded.read_namespaced_secret("mask-py-secret", ns)
    assert secret.data == {"password": DATA_MASKED, "username": DATA_MASKED}
    _, _, body = raw(api, f"/api/v1/namespaces/{ns}/secrets/mask-py-secret")
    assert_no_canary("read secret", body)


def test_list_secrets_namespaced_and_across_namespaces(seeded, api, ns):
    names = [s.metadata.name for s in seeded.list_namespaced_secret(ns).items]
    assert "mask-py-secret" in names
    for path in (f"/api/v1/namespaces/{ns}/secrets", "/api/v1/secrets"):
        status, _, body = raw(api, path)
        assert status == 200
        assert_no_canary(f"list {path}", body)


def test_configmap_value_flagged_by_a_detector(seeded, ns):
    cm = seeded.read_namespaced_config_map("mask-py-config", ns)
    assert cm.data["DATABASE_URL"] == f"postgres://app:{MASKED}@db/app"
    assert cm.data["LOG_LEVEL"] == "info"


def test_pod_env_literal(seeded, ns):
    pod = seeded.read_namespaced_pod("mask-py-pod", ns)
    assert pod.spec.containers[0].env[0].value == MASKED


def test_table_with_include_object(seeded, api, ns):
    status, _, body = raw(
        api, f"/api/v1/namespaces/{ns}/secrets", accept=TABLE, query=[("includeObject", "Object")]
    )
    assert status == 200
    assert json.loads(body)["kind"] == "Table"
    assert_no_canary("Table", body)


def test_protobuf_only_is_refused_and_protobuf_or_json_is_masked_json(seeded, api, ns):
    status, _, body = raw(
        api, f"/api/v1/namespaces/{ns}/secrets", accept="application/vnd.kubernetes.protobuf"
    )
    assert status == 406
    assert json.loads(body)["kind"] == "Status"
    status, headers, body = raw(
        api,
        f"/api/v1/namespaces/{ns}/secrets/mask-py-secret",
        accept="application/vnd.kubernetes.protobuf, application/json",
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert_no_canary("protobuf or json", body)
    assert json.loads(body)["data"]["password"] == DATA_MASKED


def test_gzip_accept_encoding(seeded, api, ns):
    status, headers, body = raw(
        api, "/api/v1/secrets", headers={"Accept-Encoding": "gzip"}
    )
    assert status == 200
    # urllib3 decodes a gzip answer itself; either way the bytes are masked
    assert_no_canary("gzip", body)
    assert json.loads(body)["kind"] == "SecretList"


def test_watch(seeded, ns):
    w = watch.Watch()
    seen = []
    for event in w.stream(seeded.list_namespaced_secret, ns, timeout_seconds=2):
        seen.append(event)
        assert_no_canary("watch", json.dumps(event["raw_object"]))
        if event["object"].metadata.name == "mask-py-secret":
            assert event["object"].data["password"] == DATA_MASKED
            w.stop()
    assert any(e["object"].metadata.name == "mask-py-secret" for e in seen)


def test_logs(seeded, ns, demo):
    if not demo["emulator"]:
        pytest.skip("needs the emulator's pod logs")
    text = seeded.read_namespaced_pod_log("mask-py-pod", ns)
    assert "DB_PASSWORD=[MASKED]" in text, text
    assert_no_canary("logs", text)


def test_logs_follow(ns, demo, seeded):
    if not demo["emulator"]:
        pytest.skip("needs the emulator's pod logs")
    # its own connection pool: the followed stream is cut off from another thread
    own = client.ApiClient(seeded.api_client.configuration)
    resp = client.CoreV1Api(own).read_namespaced_pod_log(
        "mask-py-pod", ns, follow=True, _preload_content=False
    )
    received = bytearray()

    def read():
        try:
            for chunk in resp.stream(64):
                received.extend(chunk)
        except Exception:  # the stream is cut off below
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1.5)
    resp.shutdown() if hasattr(resp, "shutdown") else resp.close()
    reader.join(timeout=5)
    text = received.decode("utf-8", "replace")
    assert "heartbeat" in text, text
    assert "DB_PASSWORD=[MASKED]" in text, text
    assert_no_canary("logs follow", text)


def test_token_request(seeded, ns):
    answer = seeded.create_namespaced_service_account_token(
        "default", ns, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    )
    assert answer.status.token == MASKED
