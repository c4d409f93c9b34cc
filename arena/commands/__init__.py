"""Subcommands of `guanaco`: each module here defines `register(subparsers, common)`.

Modules are discovered, so adding a command is adding a file. Heavy imports (torch, gradio) belong
inside the command's function, so that `guanaco --help` stays instant."""
