"""Bearer tokens that expire, and the exec credential plugin that hands them out.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.

Real clusters accept short-lived tokens minted outside the apiserver: EKS tokens from
`aws-iam-authenticator` / `aws eks get-token` (about 15 minutes), GKE tokens from
`gke-gcloud-auth-plugin` (about an hour), bound service account tokens (JWTs with `exp`).
The apiserver checks them on every request (the authentication filter,
staging/src/k8s.io/apiserver/pkg/endpoints/filters/authentication.go): a token that no
longer authenticates gets `401` with the `Unauthorized` Status (`responsewriters`' error
for `apierrors.NewUnauthorized("Unauthorized")`), whatever the request. A request already
streaming (a watch, a log follow) is not cut off: authentication happens once, at its start.

The fake's tokens are `k8sfake.<issued, unix ns>.<expiry, unix s>.<hmac>`, signed with a
key only the fake and the plugin know; one past its expiry is refused like any unknown
token. The plugin runs in another process, on the wall clock, so the fake's virtual clock
does not apply; `TokenIssuer.expire_issued()` makes every token handed out so far expire
now, which is what a test needs of a 15-minute lifetime. `python -m tests.k8sfake.tokens` is the exec
plugin (client.authentication.k8s.io/v1beta1, as `aws eks get-token` prints): it reads the
key and the lifetime from its environment, as a kubeconfig `exec.env` gives them, and
appends one line per run to `K8SFAKE_PLUGIN_LOG` so a test can count the refreshes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import sys
import time

EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"


def _sign(key: str, payload: str) -> str:
    return hmac.new(key.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]


def mint(key: str, *, lifetime: float) -> tuple[str, float]:
    """A signed token and its expiry (unix seconds)."""
    issued = time.time_ns()
    expiry = issued / 1e9 + lifetime
    payload = f"k8sfake.{issued}.{int(expiry)}"
    return f"{payload}.{_sign(key, payload)}", expiry


class TokenIssuer:
    """The fake's side: which minted tokens still authenticate."""

    def __init__(self) -> None:
        self.key = secrets.token_hex(16)
        self._expired_up_to_ns = 0

    def expire_issued(self) -> None:
        """Every token handed out until now expires now."""
        self._expired_up_to_ns = time.time_ns()

    def authenticates(self, token: str) -> bool:
        payload, _, signature = token.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 3 or parts[0] != "k8sfake" or not (parts[1] + parts[2]).isdigit():
            return False
        if not hmac.compare_digest(signature, _sign(self.key, payload)):
            return False
        return int(parts[1]) > self._expired_up_to_ns and time.time() < int(parts[2])

    def exec_user(self, *, lifetime: float, log_file: str, report_expiry: bool = False) -> dict:
        """A kubeconfig `user` whose exec plugin is this module."""
        env = [
            {"name": "K8SFAKE_TOKEN_KEY", "value": self.key},
            {"name": "K8SFAKE_TOKEN_LIFETIME", "value": str(lifetime)},
            {"name": "K8SFAKE_PLUGIN_LOG", "value": log_file},
            {"name": "PYTHONPATH", "value": os.getcwd()},
        ]
        if report_expiry:
            env.append({"name": "K8SFAKE_REPORT_EXPIRY", "value": "1"})
        return {"exec": {
            "apiVersion": EXEC_API_VERSION, "command": sys.executable,
            "args": ["-m", "tests.k8sfake.tokens"], "env": env,
            "interactiveMode": "Never", "provideClusterInfo": False,
        }}


def main() -> None:
    key = os.environ["K8SFAKE_TOKEN_KEY"]
    token, expiry = mint(key, lifetime=float(os.environ["K8SFAKE_TOKEN_LIFETIME"]))
    status: dict[str, str] = {"token": token}
    if os.environ.get("K8SFAKE_REPORT_EXPIRY"):
        status["expirationTimestamp"] = dt.datetime.fromtimestamp(expiry, dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    with open(os.environ["K8SFAKE_PLUGIN_LOG"], "a") as log:
        log.write(token + "\n")
    json.dump({"apiVersion": EXEC_API_VERSION, "kind": "ExecCredential", "status": status},
              sys.stdout)


if __name__ == "__main__":
    main()
