"""Annotators' pseudonyms: a person's name in a bundle is a keyed hash that only the store can make.

A pseudonym is ``annotator-<16 hex of HMAC-SHA256(key, name)>``, the key being a secret of the
store (or ``GUANACO_PSEUDONYM_KEY``, shared by several stores) that never leaves it, so guessing
names and hashing them re-identifies no one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from sqlalchemy.orm import Session

from arena.query.secret import store_secret
from arena.query.vocabulary import HUMAN_PREFIX, human_judge, is_human_name

PSEUDONYM_KEY_ENV = "GUANACO_PSEUDONYM_KEY"
"""A key shared by several stores, so that their bundles give one annotator the same pseudonym."""
PSEUDONYM = re.compile(r"annotator-[0-9a-f]{16}")


class Pseudonyms:
    """`annotator-<16 hex of HMAC-SHA256(key, name)>`: stable for one key, and a pseudonym is kept
    as it is (re-exporting an imported bundle changes nothing). Without the key, a list of guessed
    names cannot be hashed into the same pseudonyms."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, name: str) -> str:
        if PSEUDONYM.fullmatch(name):
            return name
        return "annotator-" + hmac.new(self._key, name.encode(), hashlib.sha256).hexdigest()[:16]

    def judge(self, judge: str) -> str:
        if is_human_name(judge):
            return human_judge(self(judge.removeprefix(HUMAN_PREFIX)))
        return judge


def pseudonym_key(session: Session) -> bytes:
    """`GUANACO_PSEUDONYM_KEY` if set, else the store's own secret (made on first use)."""
    return (os.environ.get(PSEUDONYM_KEY_ENV) or store_secret(session, "pseudonym-key")).encode()
