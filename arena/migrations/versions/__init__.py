"""One Alembic revision per file, named <number>_<what it changes>.py."""
