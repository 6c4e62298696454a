"""The keyed prompt hash: what stands for a prompt everywhere past the predictor (routes, archive, dead letters).

Why keyed (HMAC-SHA256 with a secret) and not a plain sha256: a plain hash of a prompt can be confirmed by anyone
who guesses the prompt ("is this customer's prompt 'my card number is 4111...'?") — hash the guess, compare.
With a key, only whoever holds the key can. The hash stays stable across processes and restarts so the archive
can still join a request's rows (requests, predicted_requests, routes) and count repeated prompts.

Where the key comes from, in order:
1. ``PRESERVE_PROMPT_HASH_KEY`` (settings ``prompt_hash_key``): set one secret on every host of a deployment.
2. Unset: ``<data dir>/prompt-hash.key``, created once with 32 random bytes (mode 0600) and shared by every
   process using that data dir (one host). A WARNING says so once per process: hosts with their own data dir
   hash differently.
3. That file cannot be created or read: a random key for this process only, with a WARNING (hashes then differ
   between processes and restarts, so cross-table joins by hash fail — private, never wrong-but-guessable).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from functools import cache
from pathlib import Path

from streams.settings import load_settings

__all__ = ["prompt_hash", "prompt_hash_key", "KEY_FILE", "ENV_VAR"]

log = logging.getLogger(__name__)

ENV_VAR = "PRESERVE_PROMPT_HASH_KEY"
KEY_FILE = "prompt-hash.key"
_KEY_BYTES = 32


def _key_file(path: Path) -> bytes:
    """The key stored at ``path``, creating it atomically (O_EXCL: two processes starting at once agree)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(_KEY_BYTES))
    text = path.read_text().strip()
    if len(text) < 2 * _KEY_BYTES:  # another process is between create and write: it writes 64 chars at once
        raise OSError(f"{path} holds no complete key")
    return bytes.fromhex(text)


@cache
def prompt_hash_key() -> bytes:
    """This process's prompt-hash key (see the module docstring for where it comes from)."""
    settings = load_settings()
    if settings.prompt_hash_key is not None:
        return settings.prompt_hash_key.get_secret_value().encode()
    path = settings.data_dir / KEY_FILE
    try:
        key = _key_file(path)
    except (OSError, ValueError) as e:
        log.warning("%s is unset and %s is unusable (%s): prompt hashes use a random key of this process only "
                    "(they differ between processes and restarts); set %s to one secret everywhere",
                    ENV_VAR, path, e, ENV_VAR)
        return secrets.token_bytes(_KEY_BYTES)
    log.warning("%s is unset: prompt hashes are keyed by %s (this host's data dir); set %s to one secret on every "
                "host so their hashes agree", ENV_VAR, path, ENV_VAR)
    return key


def prompt_hash(text: str) -> str:
    """HMAC-SHA256 of the prompt under :func:`prompt_hash_key`, 16 hex chars (64 bits: a join key, not a MAC)."""
    return hmac.new(prompt_hash_key(), text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]
