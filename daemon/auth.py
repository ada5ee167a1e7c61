"""Who may talk to riffd: private local sockets, CURVE keys and the allow-list of clients.

Local, the default: the control and event sockets are ``ipc://`` sockets in a folder that only the
user who started riffd can enter, ``$XDG_RUNTIME_DIR/riffd`` (or ``/tmp/riffd-$UID`` where there is
no XDG_RUNTIME_DIR). The folder is created 0700; a folder owned by someone else, or open to the
group or others, is refused.

Network: every ``tcp://`` endpoint, loopback included, is a ZeroMQ CURVE server (encrypted, and
each client proves a key). A ZAP authenticator admits the user's own client key and the keys in
``authorized_keys``. Binding to an address other machines can reach needs at least one key in
``authorized_keys``; without one riffd refuses to start.

The keys live in the config folder, ``$XDG_CONFIG_HOME/riffd`` or ``~/.config/riffd`` (0700),
created on first use::

    server.key, server.key_secret   the daemon's key pair (the secret file 0600)
    client.key, client.key_secret   this user's client key pair, always allowed
    authorized_keys                 other clients' public keys, one per line: KEY [name]

Keys are Z85 text (40 characters); the files are ZeroMQ certificates (``zmq.auth`` reads them).
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

log = logging.getLogger(__name__)

ZAP_DOMAIN = "riffd"
KEY_CHARS = 40            # a Z85 CURVE key: 32 bytes as 40 characters
IPC_PATH_MAX = 107        # bytes in sockaddr_un.sun_path, less its terminating NUL
LOOPBACK_NAMES = ("localhost", "lo")


class SecurityError(OSError):
    """A folder, key or endpoint is not safe to use; the message says what to do."""

    def __init__(self, message: str):
        super().__init__(errno.EACCES, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- folders ---------------------------------------------------------------------------------

def config_dir() -> Path:
    """The folder of keys and ``authorized_keys``: $XDG_CONFIG_HOME/riffd or ~/.config/riffd."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "riffd"


def runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The private folder of the default sockets, created 0700 and checked (see module doc).
    ``environ``: the environment to read XDG_RUNTIME_DIR from (default: this process's)."""
    base = (os.environ if environ is None else environ).get("XDG_RUNTIME_DIR")
    path = Path(base) / "riffd" if base else Path("/tmp") / f"riffd-{os.geteuid()}"
    return private_dir(path, "socket folder")


def private_dir(path: Path, what: str, create: bool = True) -> Path:
    """``path`` as a folder that only this user can enter: created 0700 when missing, refused
    (:class:`SecurityError`) when it is a link, another user's, or open to group or others."""
    path = Path(path)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise SecurityError(f"the riffd {what} {path} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SecurityError(f"the riffd {what} {path} is not a folder (a link or a file); "
                            f"remove it and start again")
    if st.st_uid != os.geteuid():
        raise SecurityError(f"the riffd {what} {path} belongs to another user (uid {st.st_uid}); "
                            f"someone may be impersonating riffd. Remove it, or set "
                            f"XDG_RUNTIME_DIR / XDG_CONFIG_HOME to a folder of your own")
    if st.st_mode & 0o077:
        raise SecurityError(f"the riffd {what} {path} is open to other users (mode "
                            f"{stat.S_IMODE(st.st_mode):03o}); make it private: chmod 700 {path}")
    return path


# --- endpoints -------------------------------------------------------------------------------

def default_endpoint(kind: str, environ: Mapping[str, str] | None = None) -> str:
    """The default ``control`` or ``events`` endpoint: an ipc socket in :func:`runtime_dir`."""
    if kind not in ("control", "events"):
        raise ValueError(f"kind must be control or events, not {kind!r}")
    return f"ipc://{runtime_dir(environ) / kind}"


def events_endpoint_for(control: str) -> str:
    """The event endpoint that goes with a control endpoint: the ``events`` socket beside an
    ipc ``control`` socket, or the next port (5555 → 5556) of a tcp one."""
    kind = transport(control)
    if kind == "ipc" and control.endswith("/control"):
        return control[: -len("control")] + "events"
    if kind == "tcp":
        host, _, port = control.rpartition(":")
        if port.isdigit():
            return f"{host}:{int(port) + 1}"
    return default_endpoint("events")


def transport(endpoint: str) -> str:
    """``tcp``, ``ipc``, ``inproc``, …: the part before ``://``."""
    return endpoint.partition("://")[0].lower()


def tcp_host(endpoint: str) -> str:
    """The host or interface of ``tcp://HOST:PORT`` (brackets of an IPv6 address removed)."""
    address = endpoint.partition("://")[2].rpartition(";")[2]   # a connect's source;dest
    host = address.rpartition(":")[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_loopback(endpoint: str) -> bool:
    """True for a tcp endpoint that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = tcp_host(endpoint)
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:   # *, a host name or an interface: other machines may reach it
        return False


def ipc_path(endpoint: str) -> Path:
    return Path(endpoint.partition("://")[2])


# --- keys ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair as Z85 bytes (40 characters each); ``secret`` is None for a public key."""

    public: bytes
    secret: bytes | None = None


@dataclass(frozen=True)
class ClientKeys:
    """What a client needs to reach a CURVE server: its key pair and the server's public key."""

    public: bytes
    secret: bytes
    server_public: bytes


def check_key(text: str | bytes) -> bytes:
    """A Z85 public key as bytes, or ValueError saying what a key looks like."""
    key = text.encode() if isinstance(text, str) else bytes(text)
    key = key.strip()
    try:
        ok = len(key) == KEY_CHARS and len(z85.decode(key)) == 32
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"{key[:60].decode(errors='replace')!r} is not a CURVE public key: a key is {KEY_CHARS} "
                         f"characters of Z85 text, as `riffd keys` prints them")
    return key


def key_pair(name: str, folder: Path | None = None, create: bool = True) -> KeyPair:
    """The key pair ``name`` (``server`` or ``client``) from the config folder; a new one is
    made when ``create`` and there is none. Refuses a secret file others can read."""
    folder = private_dir(folder or config_dir(), "config folder", create=create)
    public_file, secret_file = folder / f"{name}.key", folder / f"{name}.key_secret"
    if not secret_file.exists():
        if not create:
            raise SecurityError(f"no {name} key in {folder}; run `riffd keys` to create one")
        public, secret = zmq.curve_keypair()
        write_certificate(secret_file, public, secret, name)
        write_certificate(public_file, public, None, name)
        log.info("created the %s key pair in %s", name, folder)
        return KeyPair(public, secret)
    mode = stat.S_IMODE(os.stat(secret_file).st_mode)
    if mode & 0o077:
        raise SecurityError(f"{secret_file} can be read by other users (mode {mode:03o}); "
                            f"make it private: chmod 600 {secret_file}")
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise SecurityError(f"{secret_file} holds no secret key; remove it and run `riffd keys`")
    return KeyPair(public, secret)


def public_key(name: str, folder: Path | None = None) -> bytes | None:
    """The public key in ``name.key`` of the config folder, or None when there is none."""
    path = (folder or config_dir()) / f"{name}.key"
    if not path.exists():
        return None
    return zmq.auth.load_certificate(path)[0]


def write_certificate(path: Path, public: bytes, secret: bytes | None, name: str) -> None:
    """Write a ZeroMQ certificate; a secret one is created 0600 (and must not exist yet)."""
    kind = "Secret" if secret else "Public"
    lines = [f"#   ZeroMQ CURVE {kind} Certificate ({name}), made by riffd keys",
             "#   Keep the secret one to yourself: do not copy it to other users." if secret
             else "#   A public key may be shared freely.",
             "", "metadata", f"    name = \"{name}\"", "curve",
             f"    public-key = \"{public.decode()}\""]
    if secret:
        lines.append(f"    secret-key = \"{secret.decode()}\"")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_EXCL if secret else 0)
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600 if secret else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def authorized_keys(folder: Path | None = None, strict: bool = True) -> dict[bytes, str]:
    """The keys in ``authorized_keys`` (``KEY [name]`` lines; a line starting with ``#`` is a
    comment) with their names. A bad line raises SecurityError when ``strict``, else it is
    skipped."""
    path = (folder or config_dir()) / "authorized_keys"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    keys: dict[bytes, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):   # (no comments after a key: Z85 uses '#')
            continue
        word, _, name = line.partition(" ")
        try:
            keys[check_key(word)] = name.strip()
        except ValueError as exc:
            if strict:
                raise SecurityError(f"{path} line {number}: {exc}") from None
            log.warning("%s line %d is not a key; skipped", path, number)
    return keys


def allow_key(key: str | bytes, name: str = "", folder: Path | None = None) -> bool:
    """Add a client public key to ``authorized_keys``; False when it was there already."""
    key = check_key(key)
    folder = private_dir(folder or config_dir(), "config folder")
    if key in authorized_keys(folder):
        return False
    path = folder / "authorized_keys"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0),
                 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(f"{key.decode()} {' '.join(name.split())}".rstrip() + "\n")
    return True


def client_keys(folder: Path | None = None) -> ClientKeys:
    """This user's client key pair and the daemon's public key, from the config folder.

    On the daemon's own machine both pairs are made on first use. On another machine the folder
    holds what ``riffd keys --new-client NAME --out DIR`` wrote (client pair, server.key).
    """
    folder = folder or config_dir()
    mine = key_pair("client", folder)
    server = public_key("server", folder)
    if server is None:
        server = key_pair("server", folder).public
    return ClientKeys(mine.public, mine.secret, server)


def require_curve() -> None:
    if not zmq.has("curve"):
        raise SecurityError("this ZeroMQ library has no CURVE support, which tcp:// endpoints "
                            "need; use the default local endpoints, or install pyzmq's wheel "
                            "(it bundles libzmq with CURVE)")


def secure_client_socket(sock: zmq.Socket, endpoint: str, keys: ClientKeys | None = None) -> None:
    """Before ``sock.connect(endpoint)``: a tcp endpoint gets this user's CURVE keys."""
    if transport(endpoint) != "tcp":
        return
    require_curve()
    keys = keys or client_keys()
    sock.curve_serverkey = keys.server_public
    sock.curve_publickey = keys.public
    sock.curve_secretkey = keys.secret


# --- the server side ----------------------------------------------------------------------

class _AllowList:
    """ZAP callback: admits the user's own client key and ``authorized_keys`` (read at each
    connection, so `riffd keys --allow` takes effect without a restart)."""

    def __init__(self, folder: Path, own: bytes):
        self.folder = folder
        self.own = own
        self._refused: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        if key == self.own or key in authorized_keys(self.folder, strict=False):
            return True
        if key not in self._refused:   # a refused client retries; say so once per key
            self._refused.add(key)
            log.warning("refused a client with key %s: not in %s/authorized_keys",
                        key.decode(errors="replace"), self.folder)
        return False


class ServerSecurity:
    """Checks and secures the sockets of one control server (see the module doc).

    ``check`` every endpoint before binding any; ``secure`` each socket before its bind;
    ``close`` stops the ZAP authenticator.
    """

    def __init__(self, ctx: zmq.Context, folder: Path | None = None):
        self.ctx = ctx
        self.folder = folder or config_dir()
        self._keys: KeyPair | None = None
        self._auth = None

    def check(self, endpoint: str, option: str) -> None:
        """Refuse an endpoint that would let others in (SecurityError says how to set it up)."""
        kind = transport(endpoint)
        if kind == "ipc":
            path = ipc_path(endpoint)
            if len(os.fsencode(path)) > IPC_PATH_MAX:
                raise SecurityError(f"the socket path {path} is longer than {IPC_PATH_MAX} "
                                    f"bytes; pick a shorter folder for {option}")
            if not str(path).startswith("@"):   # a Linux abstract socket has no folder
                private_dir(path.parent, "socket folder", create=False)
            return
        if kind == "inproc":
            return
        if kind != "tcp":
            raise SecurityError(f"{option} {endpoint}: riffd listens on ipc:// (this machine, "
                                f"this user) or tcp:// (with CURVE keys) only")
        require_curve()
        if not is_loopback(endpoint) and not authorized_keys(self.folder):
            raise SecurityError(
                f"refusing to listen on {endpoint}: other machines can reach it and no client "
                f"key is allowed yet. For each machine that may connect, run `riffd keys "
                f"--new-client NAME` here (it prints the keys to copy there), or allow a key "
                f"you have with `riffd keys --allow PUBKEY`; then start riffd again. To stay on "
                f"this machine, leave {option} at its default (or use tcp://127.0.0.1:PORT)")

    def secure(self, sock: zmq.Socket, endpoint: str) -> None:
        """Make ``sock`` a CURVE server when ``endpoint`` is tcp (starting the authenticator)."""
        if transport(endpoint) != "tcp":
            return
        if self._keys is None:
            self._keys = key_pair("server", self.folder)
            own = key_pair("client", self.folder).public
            from zmq.auth.thread import ThreadAuthenticator
            auth = ThreadAuthenticator(self.ctx, log=logging.getLogger(__name__ + ".zap"))
            auth.start()
            auth.configure_curve_callback(ZAP_DOMAIN, _AllowList(self.folder, own))
            self._auth = auth
        sock.curve_server = True
        sock.curve_secretkey = self._keys.secret
        sock.curve_publickey = self._keys.public
        sock.zap_domain = ZAP_DOMAIN.encode()

    def close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
