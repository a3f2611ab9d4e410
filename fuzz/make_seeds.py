#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/: a few valid inputs per target.

The inputs are written here rather than by hand because several are binary (a 0xff byte
separates the parts of an input) or signed (tokens signed with the fuzz-only keys in
keys/). Each target's input format is described at the top of its fuzz_targets/*.rs.
Needs Python 3 and the `cryptography` package. Run from anywhere:

    python3 fuzz/make_seeds.py
"""

import base64
import hashlib
import hmac
import json
import os
import pathlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

FUZZ = pathlib.Path(__file__).resolve().parent
SEP = b"\xff"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def write(target: str, name: str, data) -> None:
    directory = FUZZ / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (directory / name).write_bytes(data)


def ciphertext() -> None:
    write("ciphertext", "aes-shaped", "0vault:v1:" + base64.b64encode(bytes(range(40))).decode())
    write("ciphertext", "padded", "0vault:v2:c2VjcmV0IHBheWxvYWQgd2l0aCBub25jZQ==")
    write("ciphertext", "version-spellings", "0vault:v+0003:AAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")
    write("ciphertext", "negative-version", "0vault:v-1:AAAA")
    # Mode 1: selector byte, then a JSON body. '0' = decrypt with aes256, '4' = rewrap
    # with aes256, '8' = encrypt with aes256, '3' = decrypt with the derived key.
    write("ciphertext", "decrypt-body", b"10" + compact({"ciphertext": "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}))
    write(
        "ciphertext",
        "decrypt-batch",
        b"10"
        + compact(
            {
                "batch_input": [
                    {"ciphertext": "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
                    {"ciphertext": "vault:v9:AAAA", "reference": "r2"},
                ]
            }
        ),
    )
    write("ciphertext", "decrypt-derived", b"13" + compact({"ciphertext": "vault:v1:AAAA", "context": "ZnV6ei1jb250ZXh0"}))
    write("ciphertext", "rewrap-body", b"14" + compact({"ciphertext": "vault:v1:AAAA", "key_version": 1}))
    write("ciphertext", "encrypt-body", b"18" + compact({"plaintext": "aGVsbG8=", "batch_input": [{"plaintext": ""}]}))
    # Mode 2: selector, plaintext, 0xff, edits (position, byte) pairs.
    write("ciphertext", "damaged-aes256", b"20hello world" + SEP + b"\x05A\x11\x02")
    write("ciphertext", "damaged-chacha", b"22" + SEP + b"\x30\x0a")


def sealed_value() -> None:
    payload = b64url(bytes(range(64)))
    write("sealed_value", "shaped", f"0sv:v1:0123456789abcdef:01234567:{payload}")
    write("sealed_value", "yaml-block", f"0  sv:v1:fedcba9876543210:89abcdef:{payload}\n")
    write("sealed_value", "future-version", f"0sv:v2:0123456789abcdef:01234567:{payload}")
    # Mode 1: selector, plaintext, 0xff, edits.
    write("sealed_value", "damaged", b"10db-password" + SEP + b"\x07x\x20\x03")
    write("sealed_value", "damaged-empty", b"11" + SEP + b"\x40")
    # Mode 2: a binding.
    write("sealed_value", "binding", "2default/db/password")
    write("sealed_value", "binding-dotted", "2payments/api.v2/TLS_key.pem")
    # Mode 3: public key files as svctl seal --public-key reads them.
    key = base64.b64encode(bytes(range(1, 33))).decode()
    document = {
        "key_id": "0011223344556677",
        "public_key": key,
        "algorithm": "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM",
    }
    write("sealed_value", "public-key-response", "3" + json.dumps({"data": document}))
    write("sealed_value", "public-key-bare", "3" + key + "\n")


def policy() -> None:
    write("policy", "default.hcl", (FUZZ.parent / "crates/engine/src/policy/default.hcl").read_bytes())
    write(
        "policy",
        "vault-quirks.hcl",
        """# HCL 1 as Vault accepts it
path "secret/data/{{identity.entity.metadata.team}}/*" { capabilities = ["read", "list"] policy = "read" }
path "secret/metadata/+/config" {
  capabilities = ["create", "update", "patch"]
  allowed_parameters = {
    "max_versions" = []
    cas_required = [true, "true"]
  }
  denied_parameters { "delete_version_after" = [] }
  required_parameters = ["cas_required"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = 3600
}
/* block comment */
path "sys/*" { capabilities = ["deny"] }
path "transit/encrypt/*" {
  capabilities = ["update"]
  comment = <<EOF
heredoc text
EOF
}
""",
    )
    write(
        "policy",
        "json-form.json",
        json.dumps(
            {
                "path": {
                    "secret/data/app/*": {"capabilities": ["read"]},
                    "auth/token/create": [{"capabilities": ["update"], "allowed_parameters": [{"policies": ["app"]}]}],
                }
            },
            indent=2,
        ),
    )
    write("policy", "json-list.json", json.dumps({"path": [{"a/+/b": {"capabilities": ["list"]}}, {"a/+/b": {"policy": "write"}}]}))


def kv_request() -> None:
    write(
        "kv_request",
        "lifecycle",
        """PUT data/app {"data":{"user":"admin","pass":"hunter2"}}
PUT data/app {"data":{"pass":"s3cret"},"options":{"cas":1}}
PATCH data/app {"data":{"user":null,"nested":{"a":1}}}
GET data/app {"version":"1"}
GET subkeys/app {"depth":"1"}
PUT delete/app {"versions":[1,2]}
PUT undelete/app {"versions":"1,2"}
PUT destroy/app {"versions":[1]}
DELETE data/app
GET metadata/app
LIST metadata/
""",
    )
    write(
        "kv_request",
        "metadata",
        """POST metadata/team/db {"max_versions":2,"cas_required":false,"delete_version_after":"1h30m","custom_metadata":{"owner":"ops"}}
PATCH metadata/team/db {"custom_metadata":{"owner":null,"tier":"gold"}}
POST data/team/db {"data":{"k":"v1"}}
POST data/team/db {"data":{"k":"v2"}}
POST data/team/db {"data":{"k":"v3"}}
GET metadata/team/db
DELETE metadata/team/db
""",
    )
    write(
        "kv_request",
        "config-and-cas",
        """POST config {"max_versions":3,"cas_required":true,"delete_version_after":"768h"}
GET config
PUT data/x {"data":{"a":"b"},"options":{"cas":0}}
PUT data/x {"data":{"a":"c"}}
PUT data/x%2Fy {"data":{}}
""",
    )
    write("kv_request", "errors", 'PUT data/app {"data":"not a map"}\nPATCH data/missing {"data":{}}\nPUT delete/app {}\nGET data/../sys\n')


# The token target's signer key, and serde's field order for Claims (defaults omitted).
TOKEN_KEY = bytes([7] * 32)
HS256_HEADER = b64url(b'{"typ":"JWT","alg":"HS256"}')


def svs_token(claims: dict) -> str:
    payload = b64url(compact(claims))
    signature = hmac.new(TOKEN_KEY, f"{HS256_HEADER}.{payload}".encode(), hashlib.sha256).digest()
    return f"svs.{payload}.{b64url(signature)}"


def token() -> None:
    plain = {"jti": "acc1", "iat": 1700000000, "ttl": 3600, "pol": ["default"], "dn": "token", "ren": True, "path": "auth/token/create"}
    full = {
        "jti": "acc2",
        "iat": 1700000000,
        "iatn": 123456789,
        "ttl": 600,
        "emx": 7200,
        "max": 1700007200,
        "period": 300,
        "pol": ["app", "default"],
        "meta": {"role": "web"},
        "dn": "kubernetes-payments-api",
        "ren": True,
        "par": [{"a": "parent", "e": 1700003600}],
        "orph": True,
        "ent": "entity-1",
        "idn": {"entity_id": "entity-1", "entity_name": "api", "entity_metadata": {"team": "payments"}},
        "uses": 3,
        "path": "auth/kubernetes/login",
        "role": "api",
    }
    root = {"jti": "r", "iat": 0, "ttl": 0, "pol": ["root"], "dn": "root", "ren": False, "path": "auth/token/create"}
    write("token", "signed-plain", "0" + svs_token(plain))
    write("token", "signed-full", "0" + svs_token(full))
    write("token", "alg-none", "0" + b64url(b'{"alg":"none"}') + "." + b64url(compact(plain)) + ".")
    write("token", "root-token", "0fuzz-root-token")
    write("token", "claims-damaged", b"1" + compact(full) + SEP + b"\x10A\x40\x02")
    write("token", "claims-issued", b"2" + compact(plain) + SEP + b"\x01")
    write("token", "claims-issued-full", b"2" + compact(full) + SEP + b"\x02")
    write("token", "claims-issued-root", b"2" + compact(root))


def k8s_jwt() -> None:
    keys = FUZZ / "keys"
    ec_key = serialization.load_pem_private_key((keys / "ec-p256-private.pem").read_bytes(), None)
    rsa_key = serialization.load_pem_private_key((keys / "rsa-2048-private.pem").read_bytes(), None)
    issuer = "https://kubernetes.default.svc.cluster.local"
    projected = {
        "aud": ["secretvault"],
        "exp": 4102444800,
        "iat": 1700000000,
        "nbf": 1700000000,
        "iss": issuer,
        "kubernetes.io": {
            "namespace": "payments",
            "pod": {"name": "api-0", "uid": "pod-uid"},
            "serviceaccount": {"name": "api", "uid": "sa-uid"},
        },
        "sub": "system:serviceaccount:payments:api",
    }
    # Legacy tokens carry no audience; this one has one so the checks pass.
    legacy = {
        "aud": "secretvault",
        "iss": issuer,
        "exp": 4102444800,
        "kubernetes.io/serviceaccount/namespace": "default",
        "kubernetes.io/serviceaccount/secret.name": "builder-token",
        "kubernetes.io/serviceaccount/service-account.name": "builder",
        "kubernetes.io/serviceaccount/service-account.uid": "uid",
        "sub": "system:serviceaccount:default:builder",
    }

    def sign(header: dict, claims: dict) -> str:
        signing_input = f"{b64url(compact(header))}.{b64url(compact(claims))}".encode()
        if header["alg"] == "ES256":
            r, s = decode_dss_signature(ec_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            signature = rsa_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64url(signature)

    write("k8s_jwt", "es256-projected", "0" + sign({"alg": "ES256", "typ": "JWT", "kid": "ec"}, projected))
    write("k8s_jwt", "rs256-legacy", "0" + sign({"alg": "RS256", "typ": "JWT"}, legacy))
    write("k8s_jwt", "hs256-forgery", "0" + b64url(b'{"alg":"HS256"}') + "." + b64url(compact(projected)) + ".AAAA")
    # Mode 1: header, 0xff, claims[, 0xff, edits].
    write("k8s_jwt", "sign-es256", b"1" + compact({"alg": "ES256", "kid": "ec"}) + SEP + compact(projected))
    write("k8s_jwt", "sign-rs256-damaged", b"1" + compact({"alg": "RS256"}) + SEP + compact(legacy) + SEP + b"\x20x")
    write("k8s_jwt", "sign-ps256", b"1" + compact({"alg": "PS256", "typ": "JWT"}) + SEP + compact(projected))
    # Mode 2: a JWKS with both public keys.
    ec_public = ec_key.public_key().public_numbers()
    rsa_public = rsa_key.public_key().public_numbers()
    jwks = {
        "keys": [
            {
                "use": "sig",
                "kty": "EC",
                "crv": "P-256",
                "alg": "ES256",
                "kid": "ec",
                "x": b64url(ec_public.x.to_bytes(32, "big")),
                "y": b64url(ec_public.y.to_bytes(32, "big")),
            },
            {
                "use": "sig",
                "kty": "RSA",
                "alg": "RS256",
                "kid": "rsa",
                "n": b64url(rsa_public.n.to_bytes(256, "big")),
                "e": b64url(rsa_public.e.to_bytes(3, "big")),
            },
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        ]
    }
    write("k8s_jwt", "jwks", "2" + json.dumps(jwks))


if __name__ == "__main__":
    os.umask(0o022)
    ciphertext()
    sealed_value()
    policy()
    kv_request()
    token()
    k8s_jwt()
