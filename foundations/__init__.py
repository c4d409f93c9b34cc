"""The bottom layer every package may import: errors a user can fix, where files live, the
checksum-pinned cache of public benchmark files, and the embedded SmolLM2 model converted into that
cache. It imports nothing of the project's own."""
