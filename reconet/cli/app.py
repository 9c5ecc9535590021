"""``reconet-app``: start the local web app (stylize, add a style, compare) and print its address.

Parses the command line and calls :mod:`reconet.app`; exit 0 when stopped with Ctrl-C or
SIGTERM, 1 on an error (one line), 2 on a usage error. Needs the optional Gradio extra:
``pip install "reconet[app]"``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconet.cli.common import EXIT_ERROR, one_line

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as reconet-stylize: see docs/inference.md

PROG = "reconet-app"
DEFAULT_MODELS = "~/reconet-models"


class _Stop(BaseException):
    """SIGTERM: unwind the main thread as Ctrl-C does, so the cleanup below runs."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A local web app: stylize videos and photos (audio and frame rate kept), add your own "
        "painting as a style, compare two models. Opens on this computer only unless --host says otherwise.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    parser.add_argument(
        "--models",
        default=os.environ.get("RECONET_MODELS", DEFAULT_MODELS),
        help=f"folder of your models (*.pt): listed in the page, and where added styles are saved "
        f"(default $RECONET_MODELS or {DEFAULT_MODELS})",
    )
    parser.add_argument("--max-upload-mb", type=int, default=500, help="largest upload accepted, in MB (default 500)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    return parser


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_upload_mb < 1:
        print(f"{PROG}: error: --max-upload-mb must be >= 1", file=sys.stderr)
        return 2
    if args.port is not None and not 0 < args.port < 65536:
        print(f"{PROG}: error: --port must be in 1-65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        import gradio  # noqa: F401
    except ImportError:
        print(f"{PROG}: error: the web app needs Gradio: pip install \"reconet[app]\"", file=sys.stderr)
        return EXIT_ERROR
    if not _is_loopback(args.host):
        print(
            f"{PROG}: warning: listening on {args.host}: anyone who can reach this computer on the network "
            "can use the app (uploads, training runs); there is no login",
            file=sys.stderr,
        )
    from reconet.app.jobs import Workspace

    workspace = Workspace()
    # Everything Gradio stores (uploads, cached results) goes under the app's own folder, which is
    # removed when the app stops; no telemetry and no Hub lookups.
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.uploads)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app = demo = None

    def stop(signum: int, frame: Any) -> None:
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        from reconet.app.ui import App, build_ui

        app = App(workspace, Path(args.models).expanduser())
        demo = build_ui(app)
        demo.queue(default_concurrency_limit=1, max_size=32)
        _, url, _ = demo.launch(
            server_name=args.host,
            server_port=args.port,
            max_file_size=f"{args.max_upload_mb}mb",
            prevent_thread_lock=True,
            quiet=True,
            share=False,
            inbrowser=args.open,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            footer_links=["api"],
            show_error=True,
        )
        print(f"{PROG}: running at {url} (models folder {app.models_dir}; Ctrl-C stops)", file=sys.stderr, flush=True)
        for name, reason in app.catalog.skipped.items():
            print(f"{PROG}: warning: {name} is not listed: {reason}", file=sys.stderr)
        while True:
            time.sleep(0.5)
    except (KeyboardInterrupt, _Stop):
        print(f"{PROG}: stopped", file=sys.stderr)
        return 0
    except Exception as error:  # a busy port, an unreadable models folder: one line
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        signal.signal(signal.SIGTERM, previous)
        if app is not None:
            app.training.close()
        if demo is not None:
            demo.close()
        workspace.remove()


if __name__ == "__main__":
    sys.exit(main())
