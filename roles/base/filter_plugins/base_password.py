"""``base_sha512_crypt``: a deterministic SHA-512 crypt hash (``$6$salt$…``) for /etc/shadow.

ansible-core 2.17's ``password_hash`` needs passlib; this filter uses passlib when it is
installed and the standard library's ``crypt`` otherwise (Python <= 3.12), so the base role
runs from a plain ansible-core virtualenv. The salt is fixed by the caller, so the hash is
stable and the ``user`` task idempotent.
"""

from __future__ import annotations

import warnings

from ansible.errors import AnsibleFilterError


def base_sha512_crypt(password: str, salt: str) -> str:
    salt = "".join(c for c in salt if c.isalnum())[:16]
    try:
        from passlib.hash import sha512_crypt  # type: ignore[import-not-found]

        return str(sha512_crypt.using(salt=salt, rounds=5000).hash(password))
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # noqa: PLC0415  (removed in Python 3.13)
    except ImportError:
        raise AnsibleFilterError("base_sha512_crypt: install passlib on the controller (Python >= 3.13 has no crypt)") from None
    return str(crypt.crypt(password, f"$6${salt}"))


class FilterModule:
    def filters(self):  # type: ignore[no-untyped-def]
        return {"base_sha512_crypt": base_sha512_crypt}
