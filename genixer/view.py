"""``python -m genixer.view RUN [--serve] [--port N]``: write a run's record viewer.

RUN is a run folder or its ``summary.json``. Writes ``RUN/viewer/index.html`` (open it from
the file system) and prints its path; ``--serve`` also serves the folder on 127.0.0.1 (a
free port unless ``--port``) and prints the address, until interrupted.
"""

from __future__ import annotations

import argparse
import sys

from genixer.runs.viewer import ViewerInputError, build_viewer, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genixer.view", description=__doc__)
    parser.add_argument("run", help="a run folder or its summary.json")
    parser.add_argument("--serve", action="store_true", help="serve it on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="with --serve (0: a free port)")
    args = parser.parse_args(argv)
    try:
        index = build_viewer(args.run)
    except ViewerInputError as err:
        print(f"genixer.view: {err}", file=sys.stderr)
        return 2
    print(index, flush=True)
    if args.serve:
        server = serve(index.parent, args.port)
        host, port = server.server_address[:2]
        print(f"http://{host}:{port}/index.html", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
