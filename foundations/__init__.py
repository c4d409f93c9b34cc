"""The bottom layer every package may import: errors a user can fix, where files live, and the
checksum-pinned cache of public benchmark files. It imports nothing of the project's own."""
