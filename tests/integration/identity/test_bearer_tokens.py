"""Bearer JWTs against real OIDC providers: good tokens in, every bad-token class out (401).

RFC 8725 classes: algorithm confusion, key injection through headers, unknown or reused
kids, time claims, audience and issuer, Entra tenant binding, ID tokens used as access
tokens, tampering and malformed input. Each refusal must look the same to the client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from tests.integration.identity.conftest import API_AUDIENCE, Customer, bearer

ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_EC = ec.generate_private_key(ec.SECP256R1())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(claims, separators=(",", ":")).encode())
    )


def _now_claims(customer: Customer, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return customer.claims(customer.owner_subject, iat=now, nbf=now, exp=now + 600, **extra)


def _real_kid(customer: Customer) -> str:
    kid: str = customer.idp.jwks()["keys"][0]["kid"]
    return kid


def _public_pem(customer: Customer) -> bytes:
    key = jwt.PyJWK(customer.idp.jwks()["keys"][0]).key
    return key.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _attacker_jwk() -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ATTACKER_RSA.public_key()))
    jwk["kid"] = "attacker"
    return jwk


def _me(client: TestClient, token: str) -> int:
    status: int = client.get("/v1/tenants/me", headers=bearer(token)).status_code
    return status


def test_valid_entra_and_okta_tokens_reach_their_own_tenant(
    client: TestClient, entra_customer: Customer, okta_customer: Customer
) -> None:
    for customer in (entra_customer, okta_customer):
        response = client.get("/v1/tenants/me", headers=bearer(customer.token()))
        assert response.status_code == 200, response.text
        assert response.json()["id"] == str(customer.tenant.id)


def test_expiry_within_the_leeway_is_accepted(client: TestClient, entra_customer: Customer) -> None:
    now = int(time.time())
    token = entra_customer.token(iat=now - 600, nbf=now - 600, exp=now - 30)
    assert _me(client, token) == 200


BadToken = Callable[[Customer], str]


def _alg_none(c: Customer) -> str:
    return _segments({"alg": "none", "typ": "JWT", "kid": _real_kid(c)}, _now_claims(c)) + "."


def _hs256_with_public_key(c: Customer) -> str:
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": _real_kid(c)}, _now_claims(c))
    signature = hmac.new(_public_pem(c), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def _attacker_signed(header: dict[str, Any]) -> Callable[[Customer], str]:
    def build(c: Customer) -> str:
        fields = {"kid": "attacker", **header}
        for name, value in list(fields.items()):
            if value == "<real-kid>":
                fields[name] = _real_kid(c)
        return jwt.encode(_now_claims(c), ATTACKER_RSA, algorithm="RS256", headers=fields)

    return build


def _es256_with_real_kid(c: Customer) -> str:
    return jwt.encode(_now_claims(c), ATTACKER_EC, algorithm="ES256", headers={"kid": _real_kid(c)})


def _tampered_payload(c: Customer) -> str:
    header, _, signature = c.token().split(".")
    forged = _b64(json.dumps(_now_claims(c, scp="everything", roles=["admin"])).encode())
    return f"{header}.{forged}.{signature}"


def _tampered_alg(c: Customer) -> str:
    _, payload, signature = c.token().split(".")
    header = _b64(json.dumps({"alg": "RS512", "typ": "JWT", "kid": _real_kid(c)}).encode())
    return f"{header}.{payload}.{signature}"


def _foreign_entra_tenant(c: Customer) -> str:
    stranger = str(uuid.uuid4())
    return c.token(tid=stranger, iss=f"https://login.microsoftonline.com/{stranger}/v2.0")


def _now() -> int:
    return int(time.time())


BAD_TOKENS: dict[str, BadToken] = {
    "alg none": _alg_none,
    "HS256 signed with the public key": _hs256_with_public_key,
    "unknown kid": _attacker_signed({}),
    "attacker key reusing the real kid": _attacker_signed({"kid": "<real-kid>"}),
    "jku header injection": _attacker_signed({"jku": "http://127.0.0.1:9/jwks"}),
    "x5u header injection": _attacker_signed({"x5u": "http://127.0.0.1:9/cert.pem"}),
    "embedded jwk header": _attacker_signed({"jwk": _attacker_jwk()}),
    "x5c header": _attacker_signed({"x5c": ["MIIB"]}),
    "ES256 header over an RSA kid": _es256_with_real_kid,
    "typ of another token kind": lambda c: c.idp.token(_now_claims(c), header={"typ": "dpop+jwt"}),
    "expired beyond leeway": lambda c: c.token(
        iat=_now() - 900, nbf=_now() - 900, exp=_now() - 200
    ),
    "not yet valid": lambda c: c.token(nbf=_now() + 600),
    "issued in the future": lambda c: c.token(iat=_now() + 600, nbf=_now()),
    "no exp": lambda c: c.idp.token(_now_claims(c), drop=["exp"]),
    "wrong audience": lambda c: c.token(aud="api://someone-else"),
    "wrong issuer": lambda c: c.token(iss="https://idp.invalid/not-onboarded"),
    "valid signature from a non-onboarded Entra tenant": _foreign_entra_tenant,
    "tid not matching the issuer": lambda c: c.token(tid=str(uuid.uuid4())),
    "ID token presented as access token": lambda c: c.idp.id_token(
        API_AUDIENCE,
        c.owner_subject,
        {"iss": c.issuer, "oid": c.owner_subject, "tid": c.entra_tenant_id},
    ),
    "access-token claims with a nonce": lambda c: c.token(nonce="n-0S6_WzA2Mj"),
    "no scopes or roles": lambda c: c.idp.token(_now_claims(c), drop=["scp", "scope"]),
    "tampered payload": _tampered_payload,
    "tampered header algorithm": _tampered_alg,
    "unknown subject, no JIT": lambda c: c.token(subject=f"oid-{uuid.uuid4().hex}"),
    "two segments": lambda c: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0",
    "garbage": lambda c: "not.a.jwt",
    "oversized": lambda c: c.token(padding="x" * 20_000),
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
def test_bad_tokens_are_refused_with_401(
    client: TestClient, entra_customer: Customer, name: str
) -> None:
    token = BAD_TOKENS[name](entra_customer)
    response = client.get("/v1/tenants/me", headers=bearer(token))
    assert response.status_code == 401, f"{name}: {response.status_code} {response.text}"
    body = response.json()
    assert body["code"] == "unauthorized"
    assert body["detail"] == "Authentication failed."
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert token[:40] not in response.text


def test_bad_token_classes_are_at_least_twenty() -> None:
    assert len(BAD_TOKENS) >= 20


@pytest.mark.parametrize(
    "authorization", ["", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc", "bearer"]
)
def test_missing_or_non_bearer_credentials_are_refused(
    client: TestClient, authorization: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/v1/tenants/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "Authentication failed."


def test_okta_tokens_are_keyed_on_uid_not_on_the_login(
    client: TestClient, okta_customer: Customer
) -> None:
    # Same login (sub), another uid: a different person as far as ASEP is concerned.
    token = okta_customer.idp.token(
        okta_customer.claims(f"00u{uuid.uuid4().hex[:14]}", sub=f"{okta_customer.owner_subject}")
    )
    assert _me(client, token) == 401


def test_key_rotation_mid_run_causes_no_false_rejects(
    client: TestClient, okta_customer: Customer
) -> None:
    assert _me(client, okta_customer.token()) == 200  # JWKS cached with the old key only
    okta_customer.idp.rotate()
    # Past the refetch cooldown, a token signed with the new key triggers one refetch.
    time.sleep(5.2)
    statuses = [_me(client, okta_customer.token()) for _ in range(12)]
    assert statuses == [200] * 12


def test_a_token_for_one_tenant_never_reaches_another(
    client: TestClient, entra_customer: Customer, okta_customer: Customer
) -> None:
    # Entra claims but Okta customer's issuer: signature is from the Entra IdP's keys.
    crossed = entra_customer.idp.token(
        entra_customer.claims(entra_customer.owner_subject, iss=okta_customer.issuer)
    )
    assert _me(client, crossed) == 401
