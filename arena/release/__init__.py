"""The release bundle: every record of the store as JSONL and Parquet, with a data card, and back.

A bundle is meant to be trusted and reused by people who never saw the store, so:

- **stable ids** derived from natural keys (``vicuna/12`` for a prompt, the contestant's name, a
  hash of the natural key for runs, generations, judgments and tags), never database row ids, so
  two stores with the same content export the same bundle (:mod:`.schema`, :mod:`.rows`);
- **byte-identical** output for the same store: rows sorted by id, fixed column order, nested
  values as canonical JSON (sorted keys), deterministic Parquet, and no export-time timestamps
  (:mod:`.export`);
- **no secrets**: keys such as ``api_key``, ``authorization``, ``password`` are redacted from every
  config and metadata dict, anything shaped like an API key is redacted from every string, and URLs
  lose their user name, password and (outside prompts, answers and judges' reasons) their query;
- **no machine paths**: outside prompts, answers and judges' reasons, an absolute path keeps only
  its file's name (:mod:`.scrub`, :mod:`arena.redact`);
- **pseudonyms** by default: annotator ``alice`` becomes ``annotator-<16 hex of HMAC-SHA256(key,
  "alice")>``, the key being a secret of the store (or ``GUANACO_PSEUDONYM_KEY``) that never leaves
  it, so guessing names and hashing them re-identifies no one; ``--real-names`` opts out
  (:mod:`.pseudonyms`);
- **checksums**: ``SHA256SUMS`` (``sha256sum -c`` format) covers every file, the card
  (:mod:`.card`) lists them; a new release deletes only files an earlier release wrote in its
  folder, and reading a bundle back (:mod:`.load`) refuses any file that SHA256SUMS does not vouch for;
- FastChat's ``clean_battle`` format (``battles.json``) so their Elo notebooks read it unchanged,
  and the leaderboards the bundle reproduces (:mod:`.leaderboards`).

The workflow's settings are one :class:`~arena.release.config.ReleaseConfig`. Each module holds one
noun and imports only those listed before it here: schema, config, pseudonyms, scrub, rows,
leaderboards, card, export, load (checked by the import-linter contracts in pyproject.toml).
"""
