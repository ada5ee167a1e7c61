"""``riffd keys``: show, create and allow the CURVE keys that tcp:// endpoints need.

    riffd keys                          this machine's keys and the allowed client keys
    riffd keys --new-client NAME        a key pair for another machine, allowed here
    riffd keys --allow PUBKEY [--name]  allow a client key made elsewhere
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import zmq

from riffd.daemon import auth

EXAMPLES = """\
examples:
  riffd keys                                   # list keys; creates this user's on first use
  riffd keys --new-client laptop --out laptop-riffd
  riffd keys --allow 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7' --name tablet

Local use needs no keys: by default riffd listens on sockets only you can reach. Keys are for
tcp:// endpoints (`riffd serve --control tcp://0.0.0.0:5555 --events tcp://0.0.0.0:5556`):
every client must present a key allowed here. On the other machine, put the files that
--new-client --out writes into its riffd config folder (~/.config/riffd), then
`riffd ctl --endpoint tcp://THIS-HOST:5555 status`."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``keys`` options to ``parser``."""
    parser.description = ("Show this machine's riffd keys and the client keys allowed to "
                          "connect over tcp://; create or allow client keys.")
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--new-client", metavar="NAME",
                      help="make a client key pair for another machine, allow it here and "
                           "print it")
    what.add_argument("--allow", metavar="PUBKEY", help="allow a client's public key (40 "
                                                         "characters, as `riffd keys` prints)")
    parser.add_argument("--name", default="", help="a name for --allow's key (shown in lists)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="with --new-client: also write a config folder for that machine "
                             "(client.key, client.key_secret, server.key)")


def run(args: argparse.Namespace) -> int:
    """Run ``riffd keys``; returns the exit status (1 with a message when something is wrong)."""
    try:
        auth.require_curve()
        if args.out is not None and not args.new_client:
            raise ValueError("--out goes with --new-client NAME")
        if args.new_client:
            return _new_client(args.new_client, args.out)
        if args.allow:
            added = auth.allow_key(args.allow, args.name)
            where = auth.config_dir() / "authorized_keys"
            print(f"{'allowed' if added else 'already allowed'}: {args.allow.strip()} "
                  f"({where})")
            return 0
        return _list()
    except (ValueError, OSError) as exc:
        print(f"riffd keys: {exc}", file=sys.stderr)
        return 1


def _list() -> int:
    folder = auth.config_dir()
    server = auth.key_pair("server")
    client = auth.key_pair("client")
    allowed = auth.authorized_keys()
    print(f"config folder:     {folder}")
    print(f"server public key: {server.public.decode()}   (clients need this: server.key)")
    print(f"client public key: {client.public.decode()}   (this user; always allowed)")
    print(f"allowed client keys ({folder / 'authorized_keys'}): {len(allowed)}")
    for key, name in allowed.items():
        print(f"  {key.decode()}  {name}".rstrip())
    if not allowed:
        print("  (none: tcp:// endpoints that other machines can reach are refused; "
              "add one with --new-client NAME or --allow PUBKEY)")
    return 0


def _new_client(name: str, out: Path | None) -> int:
    server = auth.key_pair("server")
    public, secret = zmq.curve_keypair()
    auth.allow_key(public, name)
    print(f"client key pair for {name} (now allowed here, in "
          f"{auth.config_dir() / 'authorized_keys'}):")
    print(f"  public key: {public.decode()}")
    print(f"  secret key: {secret.decode()}   (keep it secret: only {name} needs it)")
    print(f"server public key: {server.public.decode()}")
    if out is not None:
        folder = auth.private_dir(out, "client folder")
        auth.write_certificate(folder / "client.key_secret", public, secret, name)
        auth.write_certificate(folder / "client.key", public, None, name)
        auth.write_certificate(folder / "server.key", server.public, None, "server")
        print(f"wrote {folder}/client.key, client.key_secret, server.key: copy them into "
              f"~/.config/riffd on {name} (folder mode 700)")
    else:
        print(f"On {name}, save them as ZeroMQ certificates in ~/.config/riffd (client.key, "
              f"client.key_secret, server.key), or run again with --out DIR to have them "
              f"written for you.")
    return 0
