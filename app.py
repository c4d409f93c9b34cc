"""The human arena: `python app.py [--db URL] [--benchmark vicuna] [--host 127.0.0.1] [--port 7860]
[--auth-file FILE | --anonymous] [--allowed-host NAME] [--explore]`, the same as `guanaco app` (the UI
lives in arena/webapp.py and the arena/web*.py modules beside it; logins are written by
`guanaco users add NAME --auth-file FILE`)."""

from __future__ import annotations

import os
import sys

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from arena.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))
