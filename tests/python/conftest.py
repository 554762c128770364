"""Starts `holdpoint demo` for the Python client suite and hands out an API client for the agent.

The demo fronts the in-tree emulator, or the real cluster in HOLDPOINT_E2E_KUBECONFIG.
"""
import os
import subprocess
import tempfile
import time

import pytest
from kubernetes import client, config


def _on_emulator():
    return not os.environ.get("HOLDPOINT_E2E_KUBECONFIG")


@pytest.fixture(scope="session")
def demo():
    binary = os.environ.get("HOLDPOINT_BIN", "target/debug/holdpoint")
    workdir = tempfile.mkdtemp(prefix="holdpoint-py-")
    policy = os.path.join(os.path.dirname(os.path.abspath(__file__)), "policy.yaml")
    args = [binary, "demo", "--dir", workdir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
            "--policy", policy]
    if not _on_emulator():
        args += ["--upstream-kubeconfig", os.environ["HOLDPOINT_E2E_KUBECONFIG"]]
    log = open(os.path.join(workdir, "demo.log"), "w")
    proc = subprocess.Popen(args, stdout=log, stderr=log)
    kubeconfig = os.path.join(workdir, "agent.kubeconfig")
    deadline = time.time() + 60
    while not os.path.exists(kubeconfig):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("holdpoint demo did not start: " + open(log.name).read())
        time.sleep(0.1)
    time.sleep(0.2)
    yield {"kubeconfig": kubeconfig, "dir": workdir, "emulator": _on_emulator(), "binary": binary}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def api(demo):
    return config.new_client_from_config(config_file=demo["kubeconfig"])


@pytest.fixture()
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture()
def ns(demo):
    return "demo" if demo["emulator"] else "default"
