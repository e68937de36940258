#!/usr/bin/env python3
"""Decode NAS-5GS messages with pycrate, as an independent oracle for nido-nas.

Input (stdin): one message a line, "<name> <hex>" (the hex last).
Output (stdout): one JSON object, {"pycrate": "<version>", "results": [...]}, where
each result is {"name", "err", "exception", "message"}: `err` is the error code
that pycrate_mobile.NAS5G.parse_NAS5G returned (0 = decoded), `exception` the
text of an exception it raised (then `err` is null), `message` the name of the
message class pycrate decoded.

Exit status 0 when every line was tried (whatever pycrate said), 2 when pycrate
cannot be imported. The Rust test (tests/oracles.rs) judges the results.
"""

import contextlib
import io
import json
import sys


def main() -> int:
    # pycrate prints a notice about CryptoMobile on import: keep stdout clean.
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from pycrate_mobile.NAS5G import parse_NAS5G
    except Exception as error:  # noqa: BLE001 - report any import failure
        print(f"cannot import pycrate_mobile.NAS5G: {error!r}", file=sys.stderr)
        return 2
    try:
        from importlib.metadata import version

        pycrate_version = version("pycrate")
    except Exception:  # noqa: BLE001
        pycrate_version = "unknown"

    results = []
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        name, hex_octets = line.rsplit(None, 1)
        octets = bytes.fromhex(hex_octets)
        result = {"name": name, "err": None, "exception": None, "message": None}
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                message, err = parse_NAS5G(octets)
            result["err"] = int(err)
            if message is not None:
                result["message"] = message._name
        except Exception as error:  # noqa: BLE001 - a decoder bug is a result
            result["exception"] = f"{type(error).__name__}: {error}"
        results.append(result)
    json.dump({"pycrate": pycrate_version, "results": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
