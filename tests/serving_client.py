"""What the endpoint's integration tests share: the token, a tiny ranking request, and small HTTP helpers."""

from __future__ import annotations

import json
import socket

import requests

TOKEN = "test-token-5f2c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
APP = "ranker"
QUERY = "a small domesticated carnivore"
DOCS = [
    {"id": "cat", "title": "cat, true cat", "summary": "the cat sat on the mat; feline"},
    {"id": "dog", "title": "dog, domestic dog", "summary": "the dog barked all night; canine"},
    {"id": "stone", "title": "sandblast", "summary": "sandblast the stone wall; abrade, grind"},
    {"id": "tree", "title": "tree", "summary": "a tall plant with a wood body " * 8},  # over max_length: cut
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rank(base_url: str, payload, headers=AUTH) -> requests.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return requests.post(
        f"{base_url}/rank", data=body, headers={**headers, "Content-Type": "application/json"}, timeout=60
    )


def info(base_url: str) -> dict:
    response = requests.get(f"{base_url}/info", headers=AUTH, timeout=30)
    response.raise_for_status()
    return response.json()


def deployment_details() -> dict:
    from ray.serve.context import _get_global_client

    return _get_global_client().get_serve_details()["applications"][APP]["deployments"]["Ranker"]
